print("settled-bench")
