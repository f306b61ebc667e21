"""Serving: what a running classifier needs, and all the bot may use (through ``model``).

The encoder and its text normaliser, LoRA adapter merging, the artifact format, the language
gate, the classifier itself, the moods and the explanations. Nothing here imports
``model.training``: a bot loads and runs a model without the training code.
"""
