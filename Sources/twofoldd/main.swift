print("twofoldd: not yet implemented")
