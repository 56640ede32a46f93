"""Events to the product: outbox dispatch, endpoint management, signed delivery with retries.

    dispatcher.py   ProductEventDispatcher: the outbox relay (right after a commit) and the sweep
                    timer; fans each event out into one pending delivery per matching endpoint
    delivery.py     WebhookDeliveryWorker: the product-events queue worker (order per session,
                    retries with back-off and jitter, 410 and 24 h failing disable, replay pages)
    endpoints.py    WebhookEndpointService: endpoints per tenant (secrets in the secret store),
                    rotate, ping, delivery log, replay; retention

The design, the event catalogue and the guarantees: docs/product-integration.md.
"""
