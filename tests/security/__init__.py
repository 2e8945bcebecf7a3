"""The malicious-agent suite: a plain script plays a hostile agent under a real `corral run`."""
