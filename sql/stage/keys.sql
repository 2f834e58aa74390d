-- The layout's converters (see macros.sql); {user_id_type}, {movie_id_type}
-- and {timestamp_format} are filled in from the layout, which allows only the
-- converters' suffixes.
CREATE OR REPLACE TEMP MACRO user_key(x) AS id_from_{user_id_type}(x);
CREATE OR REPLACE TEMP MACRO movie_key(x) AS id_from_{movie_id_type}(x);
CREATE OR REPLACE TEMP MACRO unix_seconds(x) AS seconds_from_{timestamp_format}(x);
