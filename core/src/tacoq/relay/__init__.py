"""The relay: TacoQ's engine, which consumes every update, stores it and cleans up."""
