"""Generic pieces every layer uses: crash-safe writes, where data and generated files live, worker pools."""
