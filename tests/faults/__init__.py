"""Fault-injection scenarios (``nox -s faults``): real processes, real RabbitMQ and Postgres."""
