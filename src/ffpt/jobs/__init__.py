"""Jobs: one pipeline step each, config in, files out (md, metad, ...). Execution engines plug in here."""
