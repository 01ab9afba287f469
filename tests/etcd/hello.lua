-- A run that holds its --lock for a moment and says so.
io.stdout:write("ran\n")
