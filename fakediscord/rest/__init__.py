"""Discord's HTTP API (v10): one module per resource, each a ``web.RouteTableDef`` mounted by
:mod:`fakediscord.rest.app` on a sub-application whose middleware records every request,
applies injected faults and checks the bot token (:mod:`fakediscord.rest.plumbing`)."""
