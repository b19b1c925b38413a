"""Helpers the Autograd Labs notebooks import: plots and small data."""
