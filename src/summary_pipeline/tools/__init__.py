"""Tools around the product: synthetic data (``generate``), the demo, and the benchmark with its workloads and
floor jobs."""
