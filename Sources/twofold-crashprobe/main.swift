print("twofold-crashprobe: not yet implemented")
