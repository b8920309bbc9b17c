"""moecl_lib: companion library."""
