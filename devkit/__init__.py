"""Development harnesses that the tests and the benchmarks share: a real Mosquitto
broker started on free ports (`mqtt_broker`), a three-node RabbitMQ cluster
(`rabbit_cluster`) and a NATS cluster (`nats_cluster`), each in a folder of its own.

Not shipped (pyproject.toml installs no `devkit`): it runs from a checkout, beside
`tests/` and `bench/`, and needs the dev extra. A harness whose server is not
installed skips the test that asked for it (fails it under CI=true), as pytest does.
"""
