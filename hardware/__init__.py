"""Device drivers behind small interfaces: scale, scanner, GPIO."""
