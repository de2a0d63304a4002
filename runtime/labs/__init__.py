"""The built-in labs, one folder each (runtime/lab/spec.py says what a folder holds)."""
