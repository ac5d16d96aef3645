-- `media-store distribute`: the store's tables spread over a Citus cluster (run on the
-- coordinator, after `migrate`). Each step is a pair: `<step>_done` says whether the
-- step has been applied already (so a second run does nothing), `<step>` applies it;
-- server/cli/distribute.py lists the steps in order. Why each step, and what replaces
-- what Citus cannot keep, is in docs/scaling.md ("The layout on Citus").
-- These statements need the Citus extension: tests/citus/ prepares them on a real
-- cluster, tests/database/test_sqlfiles.py leaves them out.

-- name: citus_version
-- NULL where the extension is not installed in this database.
SELECT extversion FROM pg_extension WHERE extname = 'citus';

-- name: drop_complete_view_done
-- The view reads media_files; it is set aside while the table is distributed and made
-- again afterwards (create_complete_view), so its "done" is the table's.
SELECT to_regclass('media_files_complete') IS NULL
    OR EXISTS (SELECT 1 FROM pg_dist_partition
                WHERE logicalrelid = 'media_files'::regclass);

-- name: drop_complete_view
DROP VIEW IF EXISTS media_files_complete;

-- name: drop_notify_trigger_done
SELECT NOT EXISTS (SELECT 1 FROM pg_trigger
                    WHERE tgname = 'media_files_notify_deleted'
                      AND tgrelid = 'media_files'::regclass);

-- name: drop_notify_trigger
-- A trigger on a distributed table would fire on the worker holding the row, where no
-- instance listens; delete_media sends the NOTIFY itself, on the coordinator, and so
-- does the trigger on messages below.
DROP TRIGGER IF EXISTS media_files_notify_deleted ON media_files;

-- name: drop_file_name_unique_done
SELECT NOT EXISTS (SELECT 1 FROM pg_constraint
                    WHERE conname = 'media_files_file_name_key'
                      AND conrelid = 'media_files'::regclass);

-- name: drop_file_name_unique
-- A unique constraint on a distributed table must include its distribution column;
-- file_name is a new uuid4 per upload (ingest/receive.py), unique by construction.
ALTER TABLE media_files DROP CONSTRAINT IF EXISTS media_files_file_name_key;

-- name: drop_message_fkey_done
SELECT NOT EXISTS (SELECT 1 FROM pg_constraint
                    WHERE conname = 'media_files_message_id_fkey'
                      AND conrelid = 'media_files'::regclass);

-- name: drop_message_fkey
-- messages stays the chat product's own table on the coordinator: a distributed table
-- cannot reference it. Its cascade becomes the trigger made by message_cascade.
ALTER TABLE media_files DROP CONSTRAINT IF EXISTS media_files_message_id_fkey;

-- name: drop_delivery_fkey_done
SELECT NOT EXISTS (SELECT 1 FROM pg_constraint
                    WHERE conname = 'zapi_deliveries_media_id_fkey'
                      AND conrelid = 'zapi_deliveries'::regclass);

-- name: drop_delivery_fkey
-- The outbox stays on the coordinator (its claim is FOR UPDATE SKIP LOCKED over every
-- due row, which Citus runs only on one shard): no foreign key into distributed media.
ALTER TABLE zapi_deliveries DROP CONSTRAINT IF EXISTS zapi_deliveries_media_id_fkey;

-- name: drop_legacy_fkey_done
SELECT NOT EXISTS (SELECT 1 FROM pg_constraint
                    WHERE conname = 'legacy_media_media_id_fkey'
                      AND conrelid = 'legacy_media'::regclass);

-- name: drop_legacy_fkey
-- The legacy map stays on the coordinator, looked up by legacy_name (its key).
ALTER TABLE legacy_media DROP CONSTRAINT IF EXISTS legacy_media_media_id_fkey;

-- name: drop_tus_fkey_done
SELECT NOT EXISTS (SELECT 1 FROM pg_constraint
                    WHERE conname = 'tus_uploads_media_id_fkey'
                      AND conrelid = 'tus_uploads'::regclass);

-- name: drop_tus_fkey
-- tus uploads stay on the coordinator, looked up by the id in their URL.
ALTER TABLE tus_uploads DROP CONSTRAINT IF EXISTS tus_uploads_media_id_fkey;

-- name: distribute_media_files_done
SELECT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'media_files'::regclass);

-- name: distribute_media_files
-- By its own id: every statement naming one media goes to one shard.
SELECT create_distributed_table('media_files', 'id');

-- name: distribute_media_chunks_done
SELECT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'media_chunks'::regclass);

-- name: distribute_media_chunks
-- Co-located: a media's chunks on its row's shard, the foreign key and its cascade
-- kept there.
SELECT create_distributed_table('media_chunks', 'media_id', colocate_with => 'media_files');

-- name: distribute_media_variants_done
SELECT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'media_variants'::regclass);

-- name: distribute_media_variants
SELECT create_distributed_table('media_variants', 'media_id', colocate_with => 'media_files');

-- name: distribute_media_variant_chunks_done
SELECT EXISTS (SELECT 1 FROM pg_dist_partition
                WHERE logicalrelid = 'media_variant_chunks'::regclass);

-- name: distribute_media_variant_chunks
SELECT create_distributed_table('media_variant_chunks', 'media_id',
                                colocate_with => 'media_files');

-- name: nested_colocated_reads_done
SELECT EXISTS (SELECT 1 FROM pg_db_role_setting s
                 JOIN pg_database d ON d.oid = s.setdatabase
                WHERE d.datname = current_database() AND s.setrole = 0
                  AND 'citus.allow_nested_distributed_execution=on' = ANY (s.setconfig));

-- name: nested_colocated_reads
-- media_variant_list(id) and media_file_data(id), in the select list of a statement on
-- media_files, run on the worker holding the row and read the same media's variants
-- or chunks there. Citus refuses a distributed query inside a shard's query unless
-- allowed: what it guards against is a nested query on another node, outside the
-- outer transaction. These read by the row's own id, in a co-located table: always
-- the same node's shard, run in the same transaction (Citus's local execution).
-- Citus propagates the setting to every worker, later ones included; sessions opened
-- from now on have it (start the service after distribute).
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET citus.allow_nested_distributed_execution = on',
                   current_database());
END
$$;

-- name: file_data_function_done
SELECT l.lanname = 'plpgsql'
  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
 WHERE p.oid = 'media_file_data(integer)'::regprocedure;

-- name: file_data_function
-- media_file_data(id) answers as before (NULL for an unknown id or an upload in
-- progress, '' for an empty file). Citus plans no SQL-language function that takes
-- parameters; PL/pgSQL plans its statement with the id as a value: one shard.
CREATE OR REPLACE FUNCTION media_file_data(p_media_id INTEGER) RETURNS TEXT
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT coalesce((SELECT string_agg(c.data, '' ORDER BY c.seq)
                               FROM media_chunks c
                              WHERE c.media_id = f.id), '')
              FROM media_files f
             WHERE f.id = p_media_id AND f.upload_state = 'complete');
END
$$;

-- name: create_complete_view_done
-- Before distribution the view there is the one drop_complete_view sets aside.
SELECT to_regclass('media_files_complete') IS NOT NULL
   AND EXISTS (SELECT 1 FROM pg_dist_partition
                WHERE logicalrelid = 'media_files'::regclass);

-- name: create_complete_view
-- The same view as migrations/0002_media_files.sql, over the distributed table.
CREATE VIEW media_files_complete AS
SELECT f.id, f.message_id, f.file_name, f.original_name, f.mime_type, f.file_size,
       f.media_type, f.is_compressed, f.compression_quality, f.duration, f.dimensions,
       f.zapi_sent, f.zapi_message_id, f.created_at, f.updated_at,
       encode(f.sha256, 'hex') AS sha256, media_file_data(f.id) AS file_data
  FROM media_files f
 WHERE f.upload_state = 'complete';

-- name: message_cascade_function_done
SELECT to_regprocedure('media_delete_message_media()') IS NOT NULL;

-- name: message_cascade_function
-- What ON DELETE CASCADE from messages did, on the coordinator: a message's deletion
-- deletes its media (their chunks and variants by the co-located cascade) and tells
-- every instance's cache, as the dropped trigger did.
CREATE FUNCTION media_delete_message_media() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    gone INTEGER;
BEGIN
    FOR gone IN DELETE FROM media_files WHERE message_id = OLD.id
                RETURNING CASE WHEN upload_state = 'complete' THEN id END
    LOOP
        IF gone IS NOT NULL THEN
            PERFORM pg_notify('media_deleted', gone::text);
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

-- name: message_cascade_done
SELECT EXISTS (SELECT 1 FROM pg_trigger
                WHERE tgname = 'messages_delete_media' AND tgrelid = 'messages'::regclass);

-- name: message_cascade
CREATE TRIGGER messages_delete_media
    AFTER DELETE ON messages
    FOR EACH ROW EXECUTE FUNCTION media_delete_message_media();
