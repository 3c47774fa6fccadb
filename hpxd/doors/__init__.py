"""The doors: each adapts one wire format to the core. No door imports another."""
