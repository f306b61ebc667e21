#!/usr/bin/env python3
"""Train the classifier: same as the `sentiment train` command (see --help)."""

import sys

from model.cli.train import train_main

if __name__ == "__main__":
    sys.exit(train_main())
