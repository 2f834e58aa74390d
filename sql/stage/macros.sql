-- How raw text becomes typed keys and times, per the layout:
-- - integer ids are cast; text ids (e.g. zero-padded IMDb ids, UUIDs) become a
--   stable 63-bit key from their MD5, the same every night, and the text is
--   kept as external_id;
-- - timestamps become Unix seconds from seconds, milliseconds or ISO text.
-- sql/stage/keys.sql then points user_key, movie_key and unix_seconds at the
-- converters the layout declares (a CASE on a variable in every row cost
-- 2.5x the cast).
CREATE OR REPLACE TEMP MACRO id_from_integer(x) AS TRY_CAST(trim(x) AS BIGINT);
CREATE OR REPLACE TEMP MACRO id_from_text(x) AS (md5_number(trim(x)) >> 65)::BIGINT;
CREATE OR REPLACE TEMP MACRO seconds_from_unix(x) AS TRY_CAST(trim(x) AS BIGINT);
CREATE OR REPLACE TEMP MACRO seconds_from_unix_ms(x) AS TRY_CAST(trim(x) AS BIGINT) // 1000;
CREATE OR REPLACE TEMP MACRO seconds_from_iso(x) AS epoch(TRY_CAST(trim(x) AS TIMESTAMP))::BIGINT;
