"""The model's console commands, ``sentiment-train`` (:mod:`model.cli.train`) and
``sentiment-evaluate`` (:mod:`model.cli.evaluate`).

Their flags are in :mod:`model.cli.options`; a flag wins over its environment variable
(``.env.example``; read through :mod:`model.settings`). What both commands share is in
:mod:`model.cli.common`, what they print and write as reports in :mod:`model.cli.report`.
"""
