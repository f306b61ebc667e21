"""Training: what makes an artifact, used by ``sentiment-train`` / ``sentiment-evaluate`` only.

The data sets (SST-2, GoEmotions), the embedding cache, LoRA fine-tuning, fitting the logistic
regression and its thresholds, the metrics, the hand-labelled chat set (``chat_eval.tsv``,
package data), the plots and the report tables. Builds on ``model.serving``; never imported by
the bot.
"""
