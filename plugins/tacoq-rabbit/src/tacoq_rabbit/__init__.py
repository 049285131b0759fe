"""TacoQ's RabbitMQ broker plugin (``amqp://`` and ``amqps://``)."""
