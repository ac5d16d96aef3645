from django.db import models


class StoredFile(models.Model):
    """The package's documented model: base64 text, the name, the MIME type."""

    bytes = models.TextField()
    # The package's example has no index; looking a file up by name is every request.
    filename = models.CharField(max_length=255, db_index=True)
    mimetype = models.CharField(max_length=50)

    class Meta:
        app_label = "files"
