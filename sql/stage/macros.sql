-- How raw text becomes typed keys and times, per the layout (see
-- pipeline/datasets/read.py, which sets the variables first):
-- - integer ids are cast; text ids (e.g. zero-padded IMDb ids, UUIDs) become a
--   stable 63-bit key from their MD5, the same every night, and the text is
--   kept as external_id;
-- - timestamps become Unix seconds from seconds, milliseconds or ISO text.
CREATE OR REPLACE TEMP MACRO user_key(x) AS
    CASE WHEN getvariable('user_id_type') = 'text' THEN (md5_number(trim(x)) >> 65)::BIGINT
         ELSE TRY_CAST(trim(x) AS BIGINT) END;
CREATE OR REPLACE TEMP MACRO movie_key(x) AS
    CASE WHEN getvariable('movie_id_type') = 'text' THEN (md5_number(trim(x)) >> 65)::BIGINT
         ELSE TRY_CAST(trim(x) AS BIGINT) END;
CREATE OR REPLACE TEMP MACRO unix_seconds(x) AS
    CASE getvariable('timestamp_format')
        WHEN 'unix_ms' THEN TRY_CAST(trim(x) AS BIGINT) // 1000
        WHEN 'iso' THEN epoch(TRY_CAST(trim(x) AS TIMESTAMP))::BIGINT
        ELSE TRY_CAST(trim(x) AS BIGINT) END;
