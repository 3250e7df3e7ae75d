import sys
import time

#: Before torch is imported: the start-up of the process is part of what ``--time-budget`` counts.
STARTED = time.monotonic()

if __name__ == "__main__":
    if "--benchmark" in sys.argv[1:]:  # `python -m train --benchmark` is `python -m train.benchmark`
        from .benchmark import main

        main()
    else:
        from .trainer import main

        main(started=STARTED)
