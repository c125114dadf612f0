"""The national SDK's API (VXP) at the adapter: a DMS built for the axis connects unchanged.

``protocol`` reads and verifies the SDK's signed headers (pure), ``answers`` the JSON answers and
their errors, ``package`` takes the edXML out of a request body, ``store`` keeps received items
until the DMS acks them (and what the adapter sent for it, and the directory), ``inbox`` records
inbox deliveries into that store, ``service`` does what each call means, ``app`` is the HTTP face
(FastAPI) and ``server`` runs it with uvicorn beside the folder connector.
"""
