-- One user's demographics (datasets without a users file have no row).
-- Usage: duckdb -readonly warehouse/movielens.duckdb -c "SET VARIABLE user_id = 42" -f sql/queries/user_profile.sql
SELECT user_id, gender, age, occupation, zip_code
FROM users
WHERE user_id = getvariable('user_id');
