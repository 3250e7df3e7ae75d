import sys

if "--benchmark" in sys.argv[1:]:  # `python -m train --benchmark` is `python -m train.benchmark`
    from .benchmark import main
else:
    from .trainer import main

if __name__ == "__main__":
    main()
