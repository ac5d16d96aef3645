DROP FUNCTION media_variant_list(INTEGER);
DROP TABLE media_variant_chunks;
DROP TABLE media_variants;
ALTER TABLE media_files DROP COLUMN waveform;
ALTER TABLE media_files DROP COLUMN duration_exact;
