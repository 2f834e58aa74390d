-- Typed movies of ml-100k: u.item has one 0/1 flag column per genre (in the
-- order of u.genre), turned here into the genre list the other layouts give.
-- $genres is that order.
SELECT
    movie_key(movie_id) AS movie_id,
    trim(movie_id) AS external_id,
    trim(title) AS title,
    TRY_CAST(regexp_extract(trim(title), '\((\d{4})\)$', 1) AS INTEGER) AS year,
    list_filter(
        $genres,
        lambda g, i: [g_0, g_1, g_2, g_3, g_4, g_5, g_6, g_7, g_8, g_9, g_10, g_11,
                   g_12, g_13, g_14, g_15, g_16, g_17, g_18][i] = '1'
    ) AS genres
FROM stage_input
