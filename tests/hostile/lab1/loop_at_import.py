# An infinite loop at module level.
while True:
    pass
