print("settlectl")
