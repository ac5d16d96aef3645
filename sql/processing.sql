-- Media processing: what was learnt from the bytes, and the variants derived from them.
-- Facts and variants are written while the media is still 'uploading', so they become
-- visible with it in finalize_upload, or go with it when the upload is aborted.

-- name: set_media_facts
-- What processing found true of the stored bytes (dimensions as displayed, durations,
-- whether and how they were re-encoded, a voice note's waveform).
UPDATE media_files
   SET dimensions          = :dimensions,
       duration            = :duration,
       duration_exact      = :duration_exact,
       is_compressed       = :is_compressed,
       compression_quality = :compression_quality,
       waveform            = :waveform,
       updated_at          = now()
 WHERE id = :id AND upload_state = 'uploading';

-- name: insert_variant
-- A variant's row, once all its chunks are stored, pointing at its content (its own
-- copy, sealed, or the stored content with the same sha256: store/contents.py).
INSERT INTO media_variants (media_id, name, mime_type, file_size, dimensions, sha256,
                            chunk_size, chunk_count, content_id)
VALUES (:media_id, :name, :mime_type, :file_size, :dimensions, :sha256, :chunk_size,
        :chunk_count, :content_id);

-- name: get_variant
-- One variant of a complete media, with what serving needs from the media itself
-- (shaped like a media record: the same columns in the same order).
SELECT f.id, f.message_id, f.file_name, f.original_name, v.mime_type, v.file_size,
       f.media_type, f.is_compressed, f.compression_quality, f.duration, v.dimensions,
       f.zapi_sent, f.zapi_message_id, v.created_at, f.updated_at, v.chunk_size,
       v.chunk_count, v.sha256, f.duration_exact, f.waveform, '{}'::jsonb AS variants,
       v.name::varchar AS variant, v.content_id, NULL::varchar AS placeholder,
       -- a variant shows its media's content: quarantined with it
       media_quarantine_reason(f.sha256) AS quarantine_reason
  FROM media_variants v
  JOIN media_files f ON f.id = v.media_id
 WHERE v.media_id = :id AND v.name = :name AND f.upload_state = 'complete';
