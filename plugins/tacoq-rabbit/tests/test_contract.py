"""The core broker contract suite, unchanged, against the real RabbitMQ."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tacoq.contracts.broker import Broker
from tacoq.plugins import get_plugin_host
from tacoq.testing import fresh_namespace
from tacoq.testing.broker_contract import BrokerContract, ConnectBroker
from tacoq_rabbit.link import delete_namespace

KINDS = ("contract", "late")


class TestRabbitBroker(BrokerContract):
    """Every contract test, on RabbitMQ; each namespace is deleted afterwards."""

    @pytest.fixture
    def broker_url(self, amqp_url: str) -> str:
        """The RabbitMQ under test."""
        return amqp_url

    @pytest_asyncio.fixture
    async def namespace(self, amqp_url: str) -> AsyncIterator[str]:
        """A fresh namespace, deleted from RabbitMQ after the test."""
        namespace = fresh_namespace("contract")
        yield namespace
        await delete_namespace(amqp_url, namespace, KINDS)

    @pytest_asyncio.fixture
    async def connect_broker(self, broker_url: str, namespace: str) -> AsyncIterator[ConnectBroker]:
        """The contract's client factory, also deleting the other namespaces it opened."""
        opened: list[Broker] = []

        async def connect(namespace_: str | None = None) -> Broker:
            other = get_plugin_host().create_broker(broker_url, namespace=namespace_ or namespace)
            await other.connect()
            opened.append(other)
            return other

        try:
            yield connect
        finally:
            for other in reversed(opened):
                await other.close()
            for other_namespace in {b.namespace for b in opened} - {namespace}:
                await delete_namespace(broker_url, other_namespace, KINDS)
