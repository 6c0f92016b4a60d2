"""CLI command groups; see feedbackrl/cli.py."""
