"""Storage hygiene (issue 26): quotas and upload rates per API key, virus scanning with
ClamAV, and quarantine of content.

Every new content reaches the store through ingest's ``receive``; there one
:class:`guard.IngestGuard` per upload sees each piece of the bytes as they arrive
(quota reservations and the clamd stream) and, through the upload's ``guard`` hook,
the transaction that makes it visible (usage counted, quarantined content refused).
"""
