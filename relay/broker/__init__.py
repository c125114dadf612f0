"""RabbitMQ: management HTTP API, topology and policies, AMQP connections."""
