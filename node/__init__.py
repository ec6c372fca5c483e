"""The node: wiring, lifetimes and I/O around the pure protocol core."""
