"""Helpers the tests share: imported by test modules, never themselves tests."""
