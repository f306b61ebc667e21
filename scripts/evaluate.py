#!/usr/bin/env python3
"""Evaluate an artifact: same as the `sentiment evaluate` command (see --help)."""

import sys

from model.cli.evaluate import evaluate_main

if __name__ == "__main__":
    sys.exit(evaluate_main())
