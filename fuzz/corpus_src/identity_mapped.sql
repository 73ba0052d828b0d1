SUM(1)
SUM(CASE WHEN x > 1 THEN 1 ELSE 0 END) / y
1
(1)
1.
(1.)
1.0
(1.0)
1E2
1E+2
1E-2
1.1E10
1.12e-10
-11.023E7 * 3
0.2
(1 * 2) / (3 - 5)
((TRUE))
''
''''
'x'
'\x'
"x"
'\z'
'\\z'
'\\\z'
'\\\\z'
'\\\\\z'
'\\\\\\z'
'\n'
'\\n'
'\\\n'
'\\\\n'
'\\\\\n'
'\\\\\\n'
""
"""x"""
N'abc'
x
x % 1
x < 1
x <= 1
x > 1
x >= 1
x <> 1
x = y OR x > 1
x & 1
x | 1
x ^ 1
~x
x << 1
x >> 1
x >> 1 | 1 & 1 ^ 1
x || y
x[:]
x[1:]
x[:2]
x[1:2]
x[-4:-1]
1 - -1
- -5
dec.x + y
a.filter
a.b.c
a.b.c.d
a.b.c.d.e
a.b.c.d.e[0]
a.b.c.d.e[0].f
a[0][0].b.c[1].d.e.f[1][1]
a[0].b[1]
a[0].b.c['d']
a.b.C()
a['x'].b.C()
a.B()
a['x'].C()
int.x
map.x
SELECT update
SELECT x.update
SELECT call.x
SELECT end
a.b.INT(1.234)
INT(x / 100)
time * 100
int * 100
dec + 1
x IN (-1, 1)
x IN ('a', 'a''a')
x IN ((1))
x BETWEEN -1 AND 1
x BETWEEN 'a' || b AND 'c' || d
((a, b) AS c)
NOT x IS NULL
x IS TRUE
x IS FALSE
x IS TRUE IS TRUE
x LIKE y IS TRUE
TRIM('a' || 'b')
MAP()
GREATEST(x)
LEAST(y)
MAX(a, b)
MIN(a, b)
time
zone
ARRAY<TEXT>
CURRENT_DATE
CURRENT_DATE('UTC')
CURRENT_DATE AT TIME ZONE 'UTC'
CURRENT_DATE AT TIME ZONE zone_column
CURRENT_DATE AT TIME ZONE 'UTC' AT TIME ZONE 'Asia/Tokio'
f1 AT TIME ZONE INTERVAL '-10:00' AS f1
ARRAY()
ARRAY(1, 2)
ARRAY(time, foo)
ARRAY(foo, time)
ARRAY(LENGTH(waiter_name) > 0)
ARRAY_CONTAINS(x, 1)
x.EXTRACT(1)
EXTRACT(X FROM orders)
EXTRACT(DATE FROM order_items)
EXTRACT(WEEK(monday) FROM customer_addresses)
CONCAT_WS('-', 'a', 'b')
CONCAT_WS('-', 'a', 'b', 'c')
POSEXPLODE("x") AS ("a", "b")
POSEXPLODE("x") AS ("a", "b", "c")
STR_POSITION(haystack, needle)
STR_POSITION(haystack, needle, pos)
LEVENSHTEIN('gumbo', 'gambol', 2, 1, 1)
SPLIT(SPLIT(referrer, 'utm_source=')[OFFSET(1)], "&")[OFFSET(0)]
x[ORDINAL(1)][SAFE_OFFSET(2)]
x GLOB '??-*'
x GLOB y
ILIKE(x, 'z')
x LIKE SUBSTRING('abc', 1, 1)
x LIKE y
x LIKE a.y
x LIKE '%y%'
x ILIKE '%y%'
x LIKE '%y%' ESCAPE '\'
x ILIKE '%y%' ESCAPE '\'
1 AS escape
INTERVAL '1' DAY
INTERVAL '1' MONTH
INTERVAL '1' YEAR
INTERVAL '1' HOUR TO SECOND
INTERVAL '-1' AS CURRENT_DATE
INTERVAL '-31' CAST(GETDATE() AS DATE)
INTERVAL (1 + 3) DAYS
INTERVAL '1' DAY * 5
5 * INTERVAL '1' DAY
CASE WHEN TRUE THEN INTERVAL '15' DAYS END
CASE WHEN TRUE THEN 1 ELSE interval END
CASE WHEN TRUE THEN 1 ELSE "INTERVAL" END
SELECT asof FROM shopping_carts
SELECT * WHERE interval IS NULL
SELECT * WHERE NOT interval IS NULL
SELECT * WHERE INTERVAL "is" > 1
SELECT * WHERE INTERVAL x.is > 1
CAST('45' AS INTERVAL DAYS)
CAST(x AS UUID)
FILTER(a, x -> x.a.b.c.d.e.f.g)
FILTER(a, x -> FOO(x.a.b.c.d.e.f.g) + x.a.b.c.d.e.f.g)
TIMESTAMP_FROM_PARTS(2019, 1, 10, 2, 3, 4, 123456789, 'America/Los_Angeles')
TIMESTAMPDIFF(CURRENT_TIMESTAMP(), 1, DAY)
TIME_FROM_PARTS(14, 30, 45, 123456789)
DATETIME_DIFF(CURRENT_DATE, 1, DAY)
QUANTILE(x, 0.5)
REGEXP_REPLACE('new york', '(\w)(\w*)', x -> UPPER(x[1]) || LOWER(x[2]))
REGEXP_LIKE('new york', '.')
REGEXP_SPLIT('new york', '.')
SPLIT('new york', '.')
X((y AS z)).1
X(a.b = 1)
(x AS y, y AS z)
REPLACE('new york', ' ', '_')
REPLACE('new york', ' ')
DATE(x) = DATE(y)
TIMESTAMP(DATE(x))
TIMESTAMP_TRUNC(COALESCE(time_field, CURRENT_TIMESTAMP()), DAY)
MONTHNAME(x)
MONTHS_BETWEEN(CAST('2019-03-15' AS DATE), CAST('2019-02-15' AS DATE))
COUNT(DISTINCT CASE WHEN DATE_TRUNC('ISOWEEK', DATE(time_field)) = DATE_TRUNC('ISOWEEK', DATE(time_field2)) THEN report_id ELSE NULL END)
COUNT(a, b)
x[y - 1]
CASE WHEN SUM(x) > 3 THEN 1 END OVER (PARTITION BY x)
ANY(x) OVER (PARTITION BY x)
SUM(ROW() OVER (PARTITION BY x))
SUM(ROW() OVER (PARTITION BY x + 1))
SUM(ROW() OVER (PARTITION BY x AND y))
SUM(x) OVER (w ORDER BY y)
(ROW() OVER ())
CASE WHEN (x > 1) THEN 1 ELSE 0 END
CASE (1) WHEN 1 THEN 1 ELSE 0 END
CASE 1 WHEN 1 THEN 1 ELSE 0 END
CASE 1 WHEN 1 THEN timestamp ELSE date END
x AT TIME ZONE 'UTC'
CAST('2025-11-20 00:00:00+00' AS TIMESTAMP) AT TIME ZONE 'Africa/Cairo'
SET x = 1
SET x = ';'
SET variable = value
SET GLOBAL variable = value
SET LOCAL variable = value
@x
@"x"
COMMIT
USE db
USE ROLE x
USE WAREHOUSE x
USE DATABASE x
USE SCHEMA x.y
USE CATALOG abc
NOT 1
NOT NOT 1
SELECT * FROM cart_items
SELECT * FROM countries()
SELECT *, 1 FROM customers
SELECT * FROM orders
SELECT * FROM order_items
SELECT * FROM table
SELECT 1
SELECT 1 FROM customer_addresses
SELECT * FROM shopping_carts, b, (SELECT 1) AS c
SELECT a FROM cart_items
SELECT 1 AS filter
SELECT 1 AS "quoted alias"
SELECT SUM(x) AS filter
SELECT 1 AS range FROM countries
SELECT 1 AS count FROM customers
SELECT 1 AS comment FROM orders
SELECT 1 AS numeric FROM order_items
SELECT 1 AS number FROM customer_addresses
SELECT COALESCE(offset, 1)
SELECT t.count
SELECT DISTINCT x FROM shopping_carts
SELECT DISTINCT x, y FROM cart_items
SELECT DISTINCT TIMESTAMP_TRUNC(time_field, MONTH) AS time_value FROM countries
SELECT DISTINCT ON (x) x, y FROM customers
SELECT DISTINCT ON (x, y + 1) * FROM orders
SELECT DISTINCT ON (x.y) * FROM order_items
SELECT DISTINCT FROM_SOMETHING
SELECT top.x
SELECT TIMESTAMP(DATE_TRUNC('MONTH', DATE(time_field))) AS time_value FROM customer_addresses
SELECT GREATEST((3 + 1), LEAST(3, 4))
SELECT TRANSFORM(a, b -> b) AS x
SELECT AGGREGATE(a, (a, b) -> a + b) AS x
SELECT COUNT(DISTINCT a, b)
SELECT COUNT(DISTINCT a, b + 1)
SELECT SUM(DISTINCT x)
SELECT TRUNC(a, b)
SELECT ARRAY_AGG(STRUCT(x, x AS y) ORDER BY z DESC) AS x
SELECT LAG(x) OVER (ORDER BY y) AS x
SELECT LEAD(a) OVER (ORDER BY b) AS a
SELECT LEAD(a, 1) OVER (PARTITION BY a ORDER BY a) AS x
SELECT LEAD(a, 1, b) OVER (PARTITION BY a ORDER BY a) AS x
SELECT X((a, b) -> a + b, z -> z) AS x
SELECT X(a -> a + ("z" - 1))
SELECT test.* FROM shopping_carts
SELECT a AS b FROM cart_items
SELECT "a"."b" FROM countries
SELECT "a".b FROM customers
SELECT a.b FROM orders
SELECT a.b FROM order_items
SELECT '"hi' AS x FROM customer_addresses
SELECT 1 AS "|sum" FROM shopping_carts
SELECT '\"hi' AS x FROM cart_items
SELECT 1 AS b FROM countries
SELECT 1 AS "b" FROM customers
SELECT 1 + 1 FROM orders
SELECT 1 - 1 FROM order_items
SELECT 1 * 1 FROM customer_addresses
SELECT 1 % 1 FROM shopping_carts
SELECT 1 / 1 FROM cart_items
SELECT 1 < 2 FROM countries
SELECT 1 <= 2 FROM customers
SELECT 1 > 2 FROM orders
SELECT 1 >= 2 FROM order_items
SELECT 1 <> 2 FROM customer_addresses
SELECT JSON_EXTRACT(x, '$.name')
SELECT JSON_EXTRACT_SCALAR(x, '$.name')
SELECT x LIKE '%x%' FROM shopping_carts
SELECT * FROM cart_items LIMIT 100
SELECT * FROM countries LIMIT 1 + 1
SELECT * FROM customers LIMIT 100 OFFSET 200
SELECT * FROM orders LIMIT (SELECT 1)
SELECT * FROM order_items LIMIT (SELECT 1) OFFSET (SELECT 1)
SELECT * FROM customer_addresses FETCH FIRST ROWS ONLY
SELECT * FROM shopping_carts FETCH FIRST 1 ROWS ONLY
SELECT * FROM cart_items ORDER BY id DESC FETCH FIRST 10 ROWS WITH TIES
SELECT * FROM countries ORDER BY id DESC FETCH FIRST 10 PERCENT ROWS WITH TIES
SELECT * FROM customers ORDER BY always DESC
SELECT * FROM orders FETCH NEXT 1 ROWS ONLY
SELECT (1 > 2) AS x FROM order_items
SELECT NOT (1 > 2) FROM customer_addresses
SELECT 1 + 2 AS x FROM shopping_carts
SELECT a, b, 1 < 1 FROM cart_items
SELECT a FROM countries WHERE NOT FALSE
SELECT a FROM customers WHERE a = 1
SELECT a FROM orders WHERE a = 1 AND b = 2
SELECT a FROM order_items WHERE a IN (SELECT b FROM customer_addresses)
SELECT a FROM shopping_carts WHERE a IN ((SELECT 1), 2)
SELECT * FROM cart_items WHERE y IN ((SELECT 1) EXCEPT (SELECT 2))
SELECT * FROM countries WHERE y IN (SELECT 1 UNION SELECT 2)
SELECT * FROM customers WHERE y IN ((SELECT 1 UNION SELECT 2))
SELECT * FROM orders WHERE y IN (WITH z AS (SELECT 1) SELECT * FROM order_items)
SELECT a FROM customer_addresses WHERE (a > 1)
SELECT a FROM shopping_carts WHERE a > (SELECT 1 FROM cart_items GROUP BY y)
SELECT a FROM countries WHERE EXISTS(SELECT 1)
SELECT a FROM customers WHERE EXISTS(SELECT * FROM orders UNION SELECT * FROM order_items) OR TRUE
SELECT a FROM customer_addresses WHERE TRUE OR NOT EXISTS(SELECT * FROM shopping_carts)
SELECT a AS any, b AS some, c AS all, d AS exists FROM cart_items WHERE a = ANY (SELECT 1)
SELECT a FROM countries WHERE a > ALL (SELECT 1)
SELECT a FROM customers WHERE (a, b) IN (SELECT 1, 2)
SELECT X((SELECT 1) UNION (SELECT 2))
SELECT a FROM orders ORDER BY a
SELECT a FROM order_items ORDER BY a, b
SELECT x FROM customer_addresses ORDER BY a DESC, b DESC, c
SELECT a FROM shopping_carts ORDER BY a > 1
SELECT * FROM cart_items ORDER BY DATE DESC, TIMESTAMP DESC
SELECT a, b FROM countries GROUP BY 1
SELECT a, b FROM customers GROUP BY a
SELECT a, b FROM orders WHERE a = 1 GROUP BY a HAVING a = 2
SELECT a, b FROM order_items WHERE a = 1 GROUP BY a HAVING a = 2 ORDER BY a
SELECT a, b FROM customer_addresses WHERE a = 1 GROUP BY CASE 1 WHEN 1 THEN 1 END
SELECT a FROM shopping_carts GROUP BY GROUPING SETS (())
SELECT a FROM cart_items GROUP BY GROUPING SETS (x, ())
SELECT a FROM countries GROUP BY GROUPING SETS (x, (x, y), (x, y, z), q)
SELECT a FROM customers GROUP BY CUBE (x)
SELECT a FROM orders GROUP BY ROLLUP (x)
SELECT t.a FROM order_items AS t GROUP BY ROLLUP (t.x)
SELECT a FROM customer_addresses GROUP BY GROUPING SETS ((x, y)), ROLLUP (b)
SELECT a FROM shopping_carts GROUP BY CUBE (x), ROLLUP (x, y, z)
SELECT a FROM cart_items GROUP BY GROUPING SETS ((x)) LIMIT 5
SELECT a FROM countries GROUP BY ROLLUP (x) LIMIT 5
SELECT a FROM customers GROUP BY CUBE (x) OFFSET 5
SELECT a FROM orders GROUP BY ROLLUP (x) WINDOW w AS (ORDER BY x)
SELECT CASE WHEN a < b THEN 1 WHEN a < c THEN 2 ELSE 3 END FROM order_items
SELECT CASE 1 WHEN 1 THEN 1 ELSE 2 END
SELECT CASE 1 WHEN 1 THEN MAP('a', 'b') ELSE MAP('b', 'c') END['a']
SELECT CASE 1 + 2 WHEN 1 THEN 1 ELSE 2 END
SELECT CASE TEST(1) + x[0] WHEN 1 THEN 1 ELSE 2 END
SELECT CASE x[0] WHEN 1 THEN 1 ELSE 2 END
SELECT CASE a.b WHEN 1 THEN 1 ELSE 2 END
SELECT CASE CASE x > 1 WHEN TRUE THEN 1 END WHEN 1 THEN 1 ELSE 2 END
SELECT a FROM (SELECT a FROM customer_addresses) AS x
SELECT a FROM (SELECT a FROM (SELECT a FROM shopping_carts) AS y) AS x
SELECT a FROM cart_items WHERE a IN (1, 2, 3) OR b BETWEEN 1 AND 4
SELECT a FROM countries AS x TABLESAMPLE (BUCKET 1 OUT OF 5)
SELECT a FROM customers TABLESAMPLE (BUCKET 1 OUT OF 5)
SELECT a FROM orders TABLESAMPLE (BUCKET 1 OUT OF 5 ON x)
SELECT a FROM order_items TABLESAMPLE (BUCKET 1 OUT OF 5 ON RAND())
SELECT a FROM customer_addresses TABLESAMPLE (0.1 PERCENT)
SELECT a FROM shopping_carts TABLESAMPLE (100 ROWS)
SELECT a FROM cart_items PIVOT(SUM(x) FOR y IN ('z', 'q'))
SELECT 1 FROM countries AS t UNPIVOT((c3) FOR c4 IN (a, b))
SELECT a FROM customers PIVOT(SOMEAGG(x, y, z) FOR q IN (1))
SELECT a FROM orders PIVOT(SUM(x) FOR y IN ('z', 'q')) PIVOT(MAX(b) FOR c IN ('d'))
SELECT a FROM (SELECT a, b FROM order_items) PIVOT(SUM(x) FOR y IN ('z', 'q'))
SELECT a FROM customer_addresses UNPIVOT(x FOR y IN (z, q)) AS x
SELECT a FROM shopping_carts PIVOT(SUM(x) FOR y IN ('z', 'q')) UNPIVOT(x FOR y IN (z, q)) AS x
SELECT ABS(a) FROM cart_items
SELECT AVG(a) FROM countries
SELECT CEIL(a) FROM customers
SELECT CEIL(a, b) FROM orders
SELECT COUNT(a) FROM order_items
SELECT COUNT(1) FROM customer_addresses
SELECT COUNT(*) FROM shopping_carts
SELECT COUNT() FROM cart_items
SELECT COUNT(DISTINCT a) FROM countries
SELECT EXP(a) FROM customers
SELECT FLOOR(a) FROM orders
SELECT FLOOR(a, b) FROM order_items
SELECT FIRST_VALUE(a) FROM customer_addresses
SELECT GREATEST(a, b, c) FROM shopping_carts
SELECT LAST_VALUE(a) FROM cart_items
SELECT LAST_VALUE(a) IGNORE NULLS OVER () + 1
SELECT LN(a) FROM countries
SELECT MAX(a) FROM customers
SELECT MIN(a) FROM orders
SELECT POWER(a, 2) FROM order_items
SELECT QUANTILE(a, 0.95) FROM customer_addresses
SELECT ROUND(a) FROM shopping_carts
SELECT ROUND(a, 2) FROM cart_items
SELECT SUM(a) FROM countries
SELECT SQRT(a) FROM customers
SELECT STDDEV(a) FROM orders
SELECT STDDEV_POP(a) FROM order_items
SELECT STDDEV_SAMP(a) FROM customer_addresses
SELECT VARIANCE(a) FROM shopping_carts
SELECT VARIANCE_POP(a) FROM cart_items
SELECT CAST(a AS INT) FROM countries
SELECT CAST(a AS DATETIME) FROM customers
SELECT CAST(a AS VARCHAR) FROM orders
SELECT CAST(a < 1 AS INT) FROM order_items
SELECT CAST(a IS NULL AS INT) FROM customer_addresses
SELECT COUNT(CAST(1 < 2 AS INT)) FROM shopping_carts
SELECT COUNT(CASE WHEN CAST(1 < 2 AS BOOLEAN) THEN 1 END) FROM cart_items
SELECT CAST(a AS DECIMAL) FROM countries
SELECT CAST(a AS DECIMAL(1)) FROM customers
SELECT CAST(a AS DECIMAL(1, 2)) FROM orders
SELECT CAST(a AS MAP<INT, INT>) FROM order_items
SELECT CAST(a AS TIMESTAMP) FROM customer_addresses
SELECT CAST(a AS DATE) FROM shopping_carts
SELECT CAST(a AS ARRAY<INT>) FROM cart_items
SELECT CAST(a AS VARIANT) FROM countries
SELECT TRY_CAST(a AS INT) FROM customers
SELECT COALESCE(a, b, c) FROM orders
SELECT ANY_VALUE(a) FROM order_items
SELECT 1 FROM customer_addresses JOIN shopping_carts ON a.x = b.x
SELECT 1 FROM cart_items JOIN countries AS c ON a.x = b.x
SELECT 1 FROM customers INNER JOIN orders ON a.x = b.x
SELECT 1 FROM order_items LEFT JOIN customer_addresses ON a.x = b.x
SELECT 1 FROM shopping_carts RIGHT JOIN cart_items ON a.x = b.x
SELECT 1 FROM countries CROSS JOIN customers ON a.x = b.x
SELECT 1 FROM orders SEMI JOIN order_items ON a.x = b.x
SELECT 1 FROM customer_addresses LEFT SEMI JOIN shopping_carts ON a.x = b.x
SELECT 1 FROM cart_items LEFT ANTI JOIN countries ON a.x = b.x
SELECT 1 FROM customers RIGHT SEMI JOIN orders ON a.x = b.x
SELECT 1 FROM order_items RIGHT ANTI JOIN customer_addresses ON a.x = b.x
SELECT 1 FROM shopping_carts JOIN cart_items USING (x)
SELECT 1 FROM countries JOIN customers USING (x, y, z)
SELECT 1 FROM orders JOIN (SELECT a FROM order_items) AS b ON a.x = b.x AND a.x < 2
SELECT 1 FROM customer_addresses UNION SELECT 2 FROM shopping_carts
SELECT 1 FROM cart_items UNION ALL SELECT 2 FROM countries
SELECT 1 FROM customers JOIN orders ON a.foo = b.bar JOIN order_items ON a.foo = c.bar
SELECT 1 FROM customer_addresses LEFT JOIN shopping_carts ON a.foo = b.bar JOIN cart_items ON a.foo = c.bar
SELECT 1 FROM countries LEFT INNER JOIN customers ON a.foo = b.bar
SELECT 1 FROM orders LEFT OUTER JOIN order_items ON a.foo = b.bar
SELECT 1 FROM customer_addresses NATURAL JOIN shopping_carts
SELECT 1 FROM cart_items NATURAL LEFT JOIN countries
SELECT 1 FROM customers NATURAL LEFT OUTER JOIN orders
SELECT 1 FROM order_items OUTER JOIN customer_addresses ON a.foo = b.bar
SELECT 1 FROM shopping_carts FULL JOIN cart_items ON a.foo = b.bar
SELECT 1 FROM countries JOIN customers JOIN orders ON b.id = c.id ON a.id = b.id
SELECT * FROM order_items JOIN customer_addresses JOIN shopping_carts USING (id) USING (id)
SELECT 1 UNION ALL SELECT 2
SELECT 1 EXCEPT SELECT 2
SELECT 1 EXCEPT SELECT 2
SELECT 1 INTERSECT SELECT 2
SELECT 1 INTERSECT SELECT 2
SELECT 1 AS delete, 2 AS alter
SELECT * FROM (x)
SELECT * FROM ((x))
SELECT * FROM (((x)))
SELECT * FROM ((SELECT 1))
SELECT * FROM (x CROSS JOIN cart_items LATERAL VIEW EXPLODE(y))
SELECT * FROM (SELECT 1) AS x
SELECT * FROM (SELECT 1 UNION SELECT 2) AS x
SELECT * FROM (SELECT 1 UNION ALL SELECT 2) AS x
SELECT * FROM (SELECT 1 UNION ALL SELECT 2)
SELECT * FROM ((SELECT 1) AS a UNION ALL (SELECT 2) AS b)
SELECT * FROM ((SELECT 1) AS a(b))
SELECT * FROM ((SELECT 1) UNION (SELECT 2) UNION (SELECT 3))
SELECT * FROM (table1 AS t1 LEFT JOIN countries AS t2 ON 1 = 1)
SELECT * FROM (tbl1 LEFT JOIN customers ON 1 = 1)
SELECT * FROM (tbl1, tbl2 JOIN orders ON TRUE)
SELECT * FROM (tbl1 CROSS JOIN order_items)
SELECT * FROM (tbl1 CROSS JOIN customer_addresses) AS t
SELECT * FROM (tbl AS tbl) AS t
SELECT * FROM (tbl1 JOIN (tbl2 CROSS JOIN shopping_carts) ON bla = foo)
SELECT * FROM (tbl1, LATERAL (SELECT * FROM cart_items) AS tbl)
SELECT * FROM countries AS y(a, b)
SELECT * EXCEPT (a, b)
SELECT * EXCEPT (a, b) FROM customers
SELECT * REPLACE (a AS b, b AS C)
SELECT * REPLACE (a + 1 AS b, b AS C)
SELECT * EXCEPT (a, b) REPLACE (a AS b, b AS C)
SELECT * EXCEPT (a, b) REPLACE (a AS b, b AS C) FROM orders
SELECT a.* EXCEPT (a, b), b.* REPLACE (a AS b, b AS C)
SELECT a.* EXCEPT (a, b), b.* REPLACE (a AS b, b AS C) FROM order_items
SELECT A.* EXCEPT (A.COL_1) FROM customer_addresses AS A
SELECT zoo, animals FROM (VALUES ('oakland', ARRAY('a', 'b')), ('sf', ARRAY('b', 'c'))) AS t(zoo, animals)
SELECT zoo, animals FROM UNNEST(ARRAY(STRUCT('oakland' AS zoo, ARRAY('a', 'b') AS animals), STRUCT('sf' AS zoo, ARRAY('b', 'c') AS animals))) AS t(zoo, animals)
WITH out AS (SELECT 1 AS c) SELECT * FROM shopping_carts
WITH a AS (SELECT 1) SELECT 1 UNION ALL SELECT 2
WITH a AS (SELECT 1) SELECT 1 UNION SELECT 2
WITH a AS (SELECT 1) SELECT 1 INTERSECT SELECT 2
WITH a AS (SELECT 1) SELECT 1 EXCEPT SELECT 2
WITH a AS (SELECT 1) SELECT 1 EXCEPT SELECT 2
(SELECT 1) UNION (SELECT 2)
(SELECT 1) UNION SELECT 2
SELECT 1 UNION (SELECT 2)
(SELECT 1) ORDER BY x LIMIT 1 OFFSET 1
(SELECT 1 UNION SELECT 2) UNION (SELECT 2 UNION ALL SELECT 3)
(SELECT 1 UNION SELECT 2) ORDER BY x LIMIT 1 OFFSET 1
SELECT 1 UNION (SELECT 2) ORDER BY x
(SELECT 1) UNION SELECT 2 ORDER BY x
SELECT * FROM (((SELECT 1) UNION SELECT 2) ORDER BY x LIMIT 1 OFFSET 1)
SELECT * FROM ((SELECT 1 AS x) CROSS JOIN (SELECT 2 AS y)) AS z
((SELECT 1) EXCEPT (SELECT 2))
((SELECT 1)) LIMIT 1
WITH a AS (SELECT 1) SELECT a.* FROM cart_items
WITH a AS (SELECT 1), b AS (SELECT 2) SELECT a.*, b.* FROM countries CROSS JOIN customers
WITH a AS (WITH b AS (SELECT 1 AS x) SELECT b.x FROM orders) SELECT a.x FROM order_items
WITH baz AS (SELECT 1 AS col) UPDATE customer_addresses SET cid = baz.col1 FROM shopping_carts
SELECT * FROM (WITH y AS (SELECT 1 AS z) SELECT z FROM cart_items) AS x
SELECT RANK() OVER () FROM countries
SELECT RANK() OVER () AS y FROM customers
SELECT RANK() OVER (PARTITION BY a) FROM orders
SELECT RANK() OVER (PARTITION BY a, b) FROM order_items
SELECT RANK() OVER (ORDER BY a) FROM customer_addresses
SELECT RANK() OVER (ORDER BY a, b) FROM shopping_carts
SELECT RANK() OVER (PARTITION BY a ORDER BY a) FROM cart_items
SELECT RANK() OVER (PARTITION BY a, b ORDER BY a, b DESC) FROM countries
SELECT SUM(x) OVER (PARTITION BY a) AS y FROM customers
SELECT SUM(x) OVER (PARTITION BY a ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
SELECT SUM(x) OVER (PARTITION BY a ORDER BY b ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
SELECT SUM(x) OVER (PARTITION BY a ORDER BY b ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
SELECT SUM(x) OVER (PARTITION BY a ORDER BY b RANGE BETWEEN INTERVAL '1' DAY PRECEDING AND CURRENT ROW)
SELECT SUM(x) OVER (PARTITION BY a ORDER BY b RANGE BETWEEN INTERVAL '1' DAY PRECEDING AND INTERVAL '2' DAYS FOLLOWING)
SELECT SUM(x) OVER (PARTITION BY a ORDER BY b RANGE BETWEEN INTERVAL '1' DAY PRECEDING AND UNBOUNDED FOLLOWING)
SELECT SUM(x) OVER (PARTITION BY a ROWS BETWEEN UNBOUNDED PRECEDING AND PRECEDING)
SELECT SUM(x) OVER (PARTITION BY a ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
SELECT SUM(x) OVER (PARTITION BY a ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING)
SELECT SUM(x) OVER (PARTITION BY a RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
SELECT SUM(x) OVER (PARTITION BY a RANGE BETWEEN 1 AND 3)
SELECT SUM(x) OVER (PARTITION BY a RANGE BETWEEN 1 FOLLOWING AND 3)
SELECT SUM(x) OVER (PARTITION BY a RANGE BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING)
SELECT AVG(x) OVER (ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) FROM orders
SELECT SUM(x) OVER (PARTITION BY a ORDER BY date ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING)
SELECT SUM(x) OVER (ORDER BY b WITH FILL) FROM order_items
SELECT SUM(x) OVER (ORDER BY b WITH FILL, c) FROM customer_addresses
SELECT SUM(x) OVER (ORDER BY b WITH FILL FROM 1 TO 10 STEP 1 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
SELECT SUM(x) OVER (PARTITION BY a ORDER BY b WITH FILL RANGE BETWEEN INTERVAL '6' DAY PRECEDING AND CURRENT ROW)
SELECT SUM(x) OVER (PARTITION BY EXCLUDING a ORDER BY a)
SELECT SUM(x) OVER (PARTITION BY EXCLUDING a, b ORDER BY a WITH FILL RANGE BETWEEN INTERVAL '6' DAY PRECEDING AND CURRENT ROW)
SELECT LISTAGG(x) WITHIN GROUP (ORDER BY x) AS y
SELECT LISTAGG(x) WITHIN GROUP (ORDER BY x DESC)
SELECT PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY x)
SELECT PERCENTILE_DISC(0.5) WITHIN GROUP (ORDER BY x)
SELECT SUM(x) FILTER(WHERE x > 1)
SELECT SUM(x) FILTER(WHERE x > 1) OVER (ORDER BY y)
SELECT COUNT(DISTINCT a) OVER (PARTITION BY c ORDER BY d ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING)
SELECT a['1'], b[0], x.c[0], "x".d['1'] FROM shopping_carts
SELECT ARRAY(1, 2, 3) FROM cart_items
SELECT ARRAY(ARRAY(1), ARRAY(2)) FROM countries
SELECT MAP[ARRAY(1), ARRAY(2)] FROM customers
SELECT MAP(ARRAY(1), ARRAY(2)) FROM orders
SELECT MAX(ARRAY(1, 2, 3)) FROM order_items
SELECT ARRAY(ARRAY(0))[0][0] FROM customer_addresses
SELECT MAP[ARRAY('x'), ARRAY(0)]['x'] FROM shopping_carts
SELECT student, score FROM cart_items LATERAL VIEW EXPLODE(scores)
SELECT student, score FROM countries LATERAL VIEW EXPLODE(scores) AS score
SELECT student, score FROM customers LATERAL VIEW EXPLODE(scores) t AS score
SELECT student, score FROM orders LATERAL VIEW EXPLODE(scores) t AS score, name
SELECT student, score FROM order_items LATERAL VIEW OUTER EXPLODE(scores) t AS score, name
SELECT tf.* FROM (SELECT 0) AS t LATERAL VIEW STACK(1, 2) tf
SELECT tf.* FROM (SELECT 0) AS t LATERAL VIEW STACK(1, 2) tf AS col0, col1, col2
SELECT student, score FROM customer_addresses CROSS JOIN UNNEST(scores) AS t(score)
SELECT student, score FROM shopping_carts CROSS JOIN UNNEST(scores) AS t(a, b)
SELECT student, score FROM cart_items CROSS JOIN UNNEST(scores) WITH ORDINALITY AS t(a, b)
SELECT student, score FROM countries CROSS JOIN UNNEST(x.scores) AS t(score)
SELECT student, score FROM customers CROSS JOIN UNNEST(ARRAY(x.scores)) AS t(score)
CREATE TABLE orders AS (SELECT 1) UNION ALL (SELECT 2)
CREATE TABLE order_items (id INT PRIMARY KEY ASC)
CREATE TABLE customer_addresses AS SELECT 1
CREATE TABLE shopping_carts AS SELECT 1 WITH DATA AND STATISTICS
CREATE TABLE cart_items AS SELECT 1 WITH NO DATA AND NO STATISTICS
CREATE TABLE countries AS (SELECT 1) NO PRIMARY INDEX
CREATE TABLE customers AS (SELECT 1) UNIQUE PRIMARY INDEX index1 (a) UNIQUE INDEX index2 (b)
CREATE TABLE orders AS (SELECT 1) PRIMARY AMP INDEX index1 (a) UNIQUE INDEX index2 (b)
CREATE TABLE order_items AS SELECT a FROM customer_addresses
CREATE TABLE shopping_carts NOT EXISTS x AS SELECT a FROM cart_items
CREATE TABLE countries (a INT, b VARCHAR, c VARCHAR(100), d DECIMAL(5, 3))
CREATE TABLE customers (end INT)
CREATE TABLE orders (bucket INT)
CREATE TABLE order_items (truncate INT)
CREATE TABLE customer_addresses (a ARRAY<TEXT>, b MAP<TEXT, DOUBLE>, c DECIMAL(5, 3))
CREATE TABLE shopping_carts (a INT, b VARCHAR COMMENT 'z', c VARCHAR(100) COMMENT 'z', d DECIMAL(5, 3))
CREATE TABLE cart_items (a INT(11) DEFAULT UUID())
CREATE TABLE countries (n INT DEFAULT 0 NOT NULL)
CREATE TABLE customers (a INT(11) DEFAULT NULL COMMENT '客户id')
CREATE TABLE orders (a INT(11) NOT NULL DEFAULT 1)
CREATE TABLE order_items (a INT(11) NOT NULL DEFAULT -1)
CREATE TABLE customer_addresses (a INT(11) NOT NULL COLLATE utf8_bin AUTO_INCREMENT)
CREATE TABLE shopping_carts (a INT, PRIMARY KEY (a))
CREATE TABLE cart_items WITH (FORMAT='parquet') AS SELECT 1
CREATE TABLE countries WITH (FORMAT='ORC', x='2') AS SELECT 1
CREATE TABLE customers WITH (TABLE_FORMAT='iceberg', FORMAT='parquet') AS SELECT 1
CREATE TABLE orders WITH (TABLE_FORMAT='iceberg', FORMAT='ORC', x='2') AS SELECT 1
CREATE TABLE order_items (z INT) WITH (PARTITIONED_BY=(x INT, y INT))
CREATE TABLE customer_addresses (z INT) WITH (PARTITIONED_BY=(x INT)) AS SELECT 1
CREATE TABLE shopping_carts AS (WITH cte AS (SELECT 1) SELECT * FROM cart_items)
CREATE TABLE countries AS ((WITH cte AS (SELECT 1) SELECT * FROM customers))
CREATE TABLE orders (a INT UNIQUE)
CREATE TABLE order_items (a INT AUTO_INCREMENT)
CREATE TABLE customer_addresses (a INT UNIQUE AUTO_INCREMENT)
CREATE TABLE shopping_carts (a INT REFERENCES parent (b, c))
CREATE TABLE cart_items (a INT PRIMARY KEY, b INT REFERENCES foo (id))
CREATE TABLE countries (a INT, FOREIGN KEY (a) REFERENCES parent (b, c))
CREATE TABLE customers (bar INT REFERENCES baz (baz_id) ON DELETE NO ACTION)
CREATE TABLE orders (bar INT REFERENCES baz (baz_id) ON DELETE CASCADE)
CREATE TABLE order_items (bar INT REFERENCES baz (baz_id) ON DELETE SET NULL)
CREATE TABLE customer_addresses (bar INT REFERENCES baz (baz_id) ON DELETE SET DEFAULT)
CREATE TABLE shopping_carts (bar INT REFERENCES baz (baz_id) ON UPDATE cart_items ACTION)
CREATE TABLE countries (bar INT REFERENCES baz (baz_id) ON UPDATE customers)
CREATE TABLE orders (bar INT REFERENCES baz (baz_id) ON UPDATE order_items NULL)
CREATE TABLE customer_addresses (bar INT REFERENCES baz (baz_id) ON UPDATE shopping_carts DEFAULT)
CREATE TABLE cart_items AS SELECT asd FROM countries WITH NO DATA
CREATE TABLE customers AS SELECT asd FROM orders WITH DATA
CREATE TABLE order_items (x INT GENERATED BY DEFAULT AS IDENTITY)
CREATE TABLE customer_addresses (x INT GENERATED BY DEFAULT ON NULL AS IDENTITY)
CREATE TABLE shopping_carts (x INT GENERATED ALWAYS AS IDENTITY)
CREATE TABLE cart_items (szerzo_azon INT CONSTRAINT konyvszerzo_szerzo_fk REFERENCES szerzo)
CREATE TABLE countries NOT EXISTS customer (pk BIGINT NOT NULL GENERATED ALWAYS AS IDENTITY (INCREMENT BY 1))
CREATE TABLE customers (pk BIGINT NOT NULL GENERATED ALWAYS AS IDENTITY (START WITH 10 INCREMENT BY 1 MINVALUE -1 MAXVALUE 1 NO CYCLE))
CREATE TABLE orders (pk BIGINT NOT NULL GENERATED ALWAYS AS IDENTITY (START WITH 10))
CREATE TABLE order_items (pk BIGINT NOT NULL GENERATED ALWAYS AS IDENTITY (CYCLE))
CREATE TABLE customer_addresses (period INT NOT NULL)
CREATE TABLE shopping_carts (baz_id INT REFERENCES baz (id) DEFERRABLE)
CREATE TABLE cart_items (baz CHAR(4) CHARACTER SET LATIN UPPERCASE NOT CASESPECIFIC COMPRESS 'a')
CREATE TABLE countries (id INT NOT NULL, valid_date DATE FORMAT 'YYYY-MM-DD', measurement INT COMPRESS)
CREATE TABLE customers (baz DATE FORMAT 'YYYY/MM/DD' TITLE 'title' INLINE LENGTH 1 COMPRESS ('a', 'b'))
CREATE TABLE orders (title TEXT)
CREATE TABLE order_items (baz INT, inline TEXT)
CREATE ALGORITHM=UNDEFINED DEFINER=foo@% VIEW a SQL SECURITY DEFINER AS (SELECT a FROM customer_addresses)
CREATE TEMPORARY TABLE shopping_carts AS SELECT a FROM cart_items
CREATE TEMPORARY TABLE countries NOT EXISTS x AS SELECT a FROM customers
CREATE TABLE orders (b INT) ON COMMIT PRESERVE ROWS
CREATE VIEW x AS SELECT a FROM order_items
CREATE VIEW IF NOT EXISTS x AS SELECT a FROM customer_addresses
CREATE VIEW z (a, b COMMENT 'b', c COMMENT 'c') AS SELECT a, b, c FROM shopping_carts
CREATE VIEW IF NOT EXISTS z (a, b COMMENT 'b', c COMMENT 'c') AS SELECT a, b, c FROM cart_items
CREATE OR REPLACE VIEW x AS SELECT *
CREATE OR REPLACE TEMPORARY VIEW x AS SELECT *
CREATE TEMPORARY VIEW x AS SELECT a FROM countries
CREATE TEMPORARY VIEW IF NOT EXISTS x AS SELECT a FROM customers
CREATE TEMPORARY VIEW x AS WITH y AS (SELECT 1) SELECT * FROM orders
CREATE MATERIALIZED VIEW x.y.z AS SELECT a FROM order_items
CREATE VIEW z (a, b)
CREATE VIEW z (a, b COMMENT 'b', c COMMENT 'c')
CREATE VIEW z AS LOCKING ROW FOR ACCESS SELECT a FROM customer_addresses
CREATE TEMPORARY FUNCTION f
CREATE TEMPORARY FUNCTION f AS 'g'
CREATE FUNCTION f
CREATE FUNCTION f AS 'g'
CREATE FUNCTION a(b INT, c VARCHAR) AS 'SELECT 1'
CREATE FUNCTION a() LANGUAGE sql
CREATE FUNCTION a() LANGUAGE sql RETURNS INT
CREATE FUNCTION a.b(x INT) RETURNS INT AS RETURN x + 1
CREATE FUNCTION a.b(x TEXT) RETURNS TEXT CONTAINS SQL AS RETURN x
CREATE FUNCTION a.b(x TEXT) RETURNS TEXT LANGUAGE SQL MODIFIES SQL DATA AS RETURN x
CREATE FUNCTION a.b(x TEXT) LANGUAGE SQL READS SQL DATA RETURNS TEXT AS RETURN x
CREATE FUNCTION a(x INT) RETURNS INT LANGUAGE SQL CALLED ON NULL INPUT AS 'SELECT 1'
CREATE FUNCTION a.b.c()
CREATE INDEX abc ON t(a)
CREATE INDEX "abc" ON t(a)
CREATE INDEX abc ON t(a, b, b)
CREATE INDEX abc ON t(a NULLS LAST)
CREATE INDEX pointloc ON points USING GIST(BOX(location, location))
CREATE UNIQUE INDEX abc ON t(a, b, b)
CREATE UNIQUE INDEX IF NOT EXISTS my_idx ON tbl(a, b)
CREATE SCHEMA x
CREATE SCHEMA IF NOT EXISTS y
CREATE DATABASE x
CREATE DATABASE IF NOT EXISTS y
CREATE PROCEDURE IF NOT EXISTS a.b.c() AS 'DECLARE BEGIN; END'
CREATE TABLE shopping_carts AS (SELECT DISTINCT A FROM cart_items EXCEPT (SELECT A FROM countries) LIMIT 1)
DESCRIBE x
DESCRIBE EXTENDED a.b
DESCRIBE FORMATTED a.b
DESCRIBE SELECT 1
DROP INDEX a.b.c
DROP FUNCTION a.b.c (INT)
DROP MATERIALIZED VIEW x.y.z
CACHE TABLE customers
CACHE LAZY TABLE orders
CACHE LAZY TABLE order_items OPTIONS('storageLevel' = 'value')
CACHE LAZY TABLE customer_addresses OPTIONS(N'storageLevel' = 'value')
CACHE LAZY TABLE shopping_carts OPTIONS('storageLevel' = 'value') AS SELECT 1
CACHE LAZY TABLE cart_items OPTIONS('storageLevel' = 'value') AS WITH a AS (SELECT 1) SELECT a.* FROM countries
CACHE LAZY TABLE customers AS WITH a AS (SELECT 1) SELECT a.* FROM orders
CACHE TABLE order_items AS WITH a AS (SELECT 1) SELECT a.* FROM customer_addresses
CACHE TABLE shopping_carts AS (SELECT 1 AS y)
DROP PROCEDURE a.b.c (INT)
INSERT OVERWRITE TABLE cart_items PARTITION(ds) SELECT x FROM countries
INSERT OVERWRITE TABLE customers PARTITION(ds = 'YYYY-MM-DD') SELECT x FROM orders
INSERT OVERWRITE TABLE order_items PARTITION(ds, hour) SELECT x FROM customer_addresses
INSERT OVERWRITE TABLE shopping_carts PARTITION(ds = 'YYYY-MM-DD', hour = 'hh') SELECT x FROM cart_items
INSERT INTO countries PARTITION(DAY = '2024-04-14') (col1, col2) SELECT x FROM customers
DELETE FROM orders WHERE y > 1
DELETE FROM order_items
DELETE FROM customer_addresses USING sales WHERE event.eventid = sales.eventid
DELETE FROM shopping_carts USING sales, bla WHERE event.eventid = sales.eventid
DELETE FROM cart_items USING sales AS s WHERE event.eventid = s.eventid
DELETE FROM countries AS event USING sales AS s WHERE event.eventid = s.eventid
DROP TABLE customers
DROP TABLE orders
DROP TABLE order_items, b
DROP TABLE customer_addresses, c.d
DROP TABLE shopping_carts EXISTS a
DROP TABLE cart_items EXISTS a, b CASCADE
DROP TABLE countries EXISTS a.b
DROP TABLE customers CASCADE
DROP TABLE orders CASCADE CONSTRAINTS
DROP TABLE order_items PURGE
DROP VIEW a
DROP VIEW a.b
DROP VIEW IF EXISTS a
DROP VIEW IF EXISTS a.b
USE db
BEGIN
ROLLBACK
ROLLBACK TO b
INSERT INTO customer_addresses SELECT * FROM shopping_carts
INSERT INTO cart_items (SELECT * FROM countries)
INSERT INTO customers WITH y AS (SELECT 1) SELECT * FROM orders
INSERT INTO order_items IF EXISTS SELECT * FROM customer_addresses
INSERT INTO shopping_carts VALUES (1, 'a', 2.0)
INSERT INTO cart_items VALUES (1, 'a', 2.0), (1, 'a', 3.0), (X(), y[1], z.x)
INSERT INTO countries (a, b, c) SELECT a, b, c FROM customers
INSERT INTO orders (SELECT 1) UNION (SELECT 2)
INSERT INTO order_items (WITH test AS (SELECT * FROM customer_addresses) SELECT * FROM shopping_carts)
INSERT INTO cart_items ("username", "first_name", "last_name") VALUES ('fiara', 'Fiara', 'Ironhide') RETURNING "tests_user"."id"
INSERT INTO countries (tc1 /* tc1 */, tc2 /* tc2 */) SELECT c1 /* sc1 */, c2 /* sc2 */ FROM customers
INSERT INTO orders ("tc1" /* tc1 */, "tc2" /* tc2 */) SELECT "c1" /* sc1 */, "c2" /* sc2 */ FROM order_items
INSERT OVERWRITE TABLE customer_addresses IF EXISTS SELECT * FROM shopping_carts
INSERT OVERWRITE TABLE cart_items IF EXISTS SELECT * FROM countries
INSERT OVERWRITE DIRECTORY 'x' SELECT 1
INSERT OVERWRITE LOCAL DIRECTORY 'x' SELECT 1
INSERT OVERWRITE LOCAL DIRECTORY 'x' ROW FORMAT DELIMITED FIELDS TERMINATED BY '1' COLLECTION ITEMS TERMINATED BY '2' MAP KEYS TERMINATED BY '3' LINES TERMINATED BY '4' NULL DEFINED AS '5' SELECT 1
LOAD DATA INPATH 'x' INTO TABLE y PARTITION(ds = 'yyyy')
LOAD DATA LOCAL INPATH 'x' INTO TABLE y PARTITION(ds = 'yyyy')
LOAD DATA LOCAL INPATH 'x' INTO TABLE y PARTITION(ds = 'yyyy') INPUTFORMAT 'y'
LOAD DATA LOCAL INPATH 'x' INTO TABLE y PARTITION(ds = 'yyyy') INPUTFORMAT 'y' SERDE 'z'
LOAD DATA INPATH 'x' INTO TABLE y INPUTFORMAT 'y' SERDE 'z'
LOAD DATA INPATH 'x' INTO TABLE y.b INPUTFORMAT 'y' SERDE 'z'
SELECT 1 FROM customers('/x/y/*') AS y
UNCACHE TABLE orders
UNCACHE TABLE order_items EXISTS x
UPDATE customer_addresses SET foo = 123
UPDATE shopping_carts SET foo = 123, bar = 345
UPDATE cart_items SET foo = 123 WHERE tbl_name.bar = 234
UPDATE countries SET foo = 123, foo_1 = 234 WHERE tbl_name.bar = 234
UPDATE customers SET price = price * 1.10 WHERE price <= 99.99 RETURNING name, price AS new_price
UPDATE orders AS a, t2 AS b, t3 AS c LEFT JOIN order_items AS d ON c.id = d.id SET a.id = 1
COMMENT ON COLUMN my_schema.my_table.my_column IS 'Employee ID number'
COMMENT ON DATABASE my_database IS 'Development Database'
COMMENT ON PROCEDURE my_proc(integer, integer) IS 'Runs a report'
COMMENT ON TABLE customer_addresses IS 'Employee Information'
COMMENT ON TABLE shopping_carts IS N'National String'
WITH a AS (SELECT 1) INSERT INTO cart_items SELECT * FROM countries
WITH a AS (SELECT * FROM customers) UPDATE orders SET col = 1
WITH a AS (SELECT * FROM order_items) CREATE TABLE customer_addresses AS SELECT * FROM shopping_carts
WITH a AS (SELECT * FROM cart_items) DELETE FROM countries
SELECT ? AS ? FROM customers WHERE b BETWEEN ? AND ? GROUP BY ?, 1 LIMIT ?
SELECT :hello, ? FROM orders LIMIT :my_limit
SELECT a FROM order_items WHERE c IS ?
SELECT * FROM customer_addresses OFFSET @skip FETCH NEXT @take ROWS ONLY
WITH a AS ((SELECT b.foo AS foo, b.bar AS bar FROM shopping_carts) UNION ALL (SELECT c.foo AS foo, c.bar AS bar FROM cart_items)) SELECT * FROM countries
WITH a AS ((SELECT 1 AS b) UNION ALL (SELECT 1 AS b)) SELECT * FROM customers
SELECT (WITH x AS (SELECT 1 AS y) SELECT * FROM orders) AS z
SELECT ((SELECT 1) + 1)
SELECT ((SELECT 0) UNION (SELECT 1) ORDER BY 1 OFFSET 1)
SELECT * FROM order_items WHERE y IN ((SELECT 1) UNION (SELECT 2) OFFSET 2)
SELECT * FROM customer_addresses
SELECT CAST(x AS INT) /* comment */ FROM shopping_carts
SELECT c /* c1 */ AS alias /* c2 */
SELECT a /* x */, b /* x */
SELECT a /* x */ /* y */ /* z */, b /* k */ /* m */
SELECT * FROM cart_items /* x */, bla /* x */
SELECT 1 /* comment */ + 1
SELECT 1 /* c1 */ + 2 /* c2 */
SELECT 1 /* c1 */ + /* c2 */ 2 /* c3 */
SELECT 1 /* c1 */ + 2 /* c2 */ + 3 /* c3 */
SELECT 1 /* c1 */ + 2 /* c2 */, 3 /* c3 */
SELECT x FROM countries /* x */, e.f.g /* x */
SELECT FOO(x /* c */) /* FOO */, b /* b */
SELECT FOO(x /* c1 */ + y /* c2 */ + BLA(5 /* c3 */)) FROM (VALUES (1 /* c4 */, "test" /* c5 */)) /* c6 */
INSERT INTO customers SELECT * FROM orders /* comment */
/* c */ WITH x AS (SELECT 1) SELECT * FROM order_items
SELECT a FROM customer_addresses WHERE a COLLATE 'utf8_general_ci' = 'b'
SELECT x AS INTO shopping_carts bla
ALTER TABLE cart_items ADD COLUMN k INT
ALTER TABLE countries ADD COLUMN k INT FIRST
ALTER TABLE customers ADD COLUMN k INT AFTER m
ALTER TABLE orders ADD COLUMN IF NOT EXISTS k INT
ALTER TABLE order_items EXISTS integers ADD COLUMN k INT
ALTER TABLE customer_addresses ADD COLUMN l INT DEFAULT 10
ALTER TABLE shopping_carts ADD COLUMN mtime TIMESTAMPTZ DEFAULT NOW()
ALTER TABLE cart_items DROP COLUMN k
ALTER TABLE countries DROP COLUMN IF EXISTS k
ALTER TABLE customers DROP COLUMN k CASCADE
ALTER TABLE orders ALTER COLUMN i SET DATA TYPE VARCHAR
ALTER TABLE order_items ALTER COLUMN i SET DATA TYPE VARCHAR USING CONCAT(i, '_', j)
ALTER TABLE customer_addresses ALTER COLUMN i SET DEFAULT 10
ALTER TABLE shopping_carts ALTER COLUMN i DROP DEFAULT
ALTER TABLE cart_items ALTER COLUMN amount COMMENT 'tablespoons'
ALTER TABLE countries DROP COLUMN A, DROP COLUMN IF EXISTS B
ALTER TABLE customers ADD COLUMN A TEXT, ADD COLUMN IF NOT EXISTS B INT
ALTER TABLE orders DROP PARTITION(dt = '2014-05-14', country = 'IN')
ALTER TABLE order_items DROP IF EXISTS PARTITION(dt = '2014-05-14', country = 'IN')
ALTER TABLE customer_addresses DROP PARTITION(dt = '2014-05-14', country = 'IN'), PARTITION(dt = '2014-05-15', country = 'IN')
ALTER TABLE shopping_carts DELETE WHERE x = 1
ALTER TABLE cart_items RENAME COLUMN c1 TO c2
ALTER TABLE countries RENAME COLUMN IF EXISTS c1 TO c2
ALTER TABLE customers RENAME TO table2
ALTER VIEW view1 AS SELECT a, b, c FROM orders
ALTER VIEW view1 AS SELECT a, b, c FROM order_items UNION ALL SELECT a, b, c FROM customer_addresses
ALTER VIEW view1 AS SELECT a, b, c FROM shopping_carts UNION ALL SELECT a, b, c FROM cart_items LIMIT 100
SELECT div.a FROM countries AS div
WITH view AS (SELECT 1 AS x) SELECT * FROM customers
ARRAY<STRUCT<INT, DOUBLE, ARRAY<INT>>>
STRUCT<int INT>
SELECT CAST(NULL AS ARRAY<INT>) IS NULL AS array_is_null
ALTER TABLE orders ADD CONSTRAINT "CHK_Name" CHECK (NOT "IdDwh" IS NULL AND "IdDwh" <> (0))
ALTER TABLE order_items ADD CONSTRAINT persons_pk PRIMARY KEY (first_name, last_name)
ALTER TABLE customer_addresses ADD CONSTRAINT pets_persons_fk FOREIGN KEY (owner_first_name, owner_last_name) REFERENCES persons
ALTER TABLE shopping_carts ADD CONSTRAINT pets_name_not_cute_chk CHECK (LENGTH(name) < 20)
ALTER TABLE cart_items ADD CONSTRAINT dateWithinRange CHECK (birthDate > '1900-01-01')
ALTER TABLE countries ADD CONSTRAINT validIds CHECK (id > 1 AND id < 99999999) ENFORCED
ALTER TABLE customers ADD CONSTRAINT ct_id_fk FOREIGN KEY (id) REFERENCES et (fid) DEFERRABLE INITIALLY DEFERRED
ALTER TABLE orders ADD CONSTRAINT boo PRIMARY KEY (x, y) NOT ENFORCED DEFERRABLE INITIALLY DEFERRED NORELY
ALTER TABLE order_items ADD CONSTRAINT boo PRIMARY KEY (x, y) NOT ENFORCED DEFERRABLE INITIALLY DEFERRED NORELY
ALTER TABLE customer_addresses ADD CONSTRAINT boo FOREIGN KEY (x, y) REFERENCES persons ON UPDATE shopping_carts ACTION ON DELETE NO ACTION MATCH FULL
ALTER TABLE cart_items ADD PRIMARY KEY (x, y) NOT ENFORCED
ALTER TABLE countries ADD FOREIGN KEY (x, y) REFERENCES bla
ALTER TABLE customers ADD CONSTRAINT s_ut_uq UNIQUE hajo
SELECT partition FROM orders
SELECT end FROM order_items
SELECT id FROM customer_addresses AS a QUALIFY ROW_NUMBER() OVER (PARTITION BY br ORDER BY sadf DESC) = 1
SELECT * FROM shopping_carts WHERE a GROUP BY a HAVING b SORT BY s ORDER BY c LIMIT d
SELECT LEFT.FOO FROM cart_items AS LEFT
SELECT RIGHT.FOO FROM countries AS RIGHT
SELECT LEFT FROM customers LEFT JOIN orders RIGHT JOIN order_items
SELECT * FROM customer_addresses WHERE name ILIKE ANY XXX('a', 'b')
SELECT * FROM shopping_carts WHERE name LIKE ANY XXX('a', 'b')
a OVERLAPS b
PRAGMA quick_check
PRAGMA QUICK_CHECK(0)
PRAGMA QUICK_CHECK('sqlite_master')
PRAGMA schema.quick_check
PRAGMA schema.QUICK_CHECK(0)
PRAGMA schema.QUICK_CHECK('sqlite_master')
PRAGMA synchronous = 2
PRAGMA synchronous = FULL
PRAGMA memory_limit = '1GB'
PRAGMA schema.synchronous = 2
PRAGMA schema.synchronous = FULL
PRAGMA schema.memory_limit = '1GB'
JSON_OBJECT()
JSON_OBJECT(*)
JSON_OBJECT('key1': 1, 'key2': TRUE)
JSON_OBJECT('id': '5', 'fld1': 'bla', 'fld2': 'bar')
JSON_OBJECT('x': NULL, 'y': 1 NULL ON NULL)
JSON_OBJECT('x': NULL, 'y': 1 WITH UNIQUE KEYS)
JSON_OBJECT('x': NULL, 'y': 1 ABSENT ON NULL WITH UNIQUE KEYS)
JSON_OBJECT('x': 1 RETURNING VARCHAR(100))
JSON_OBJECT('x': 1 RETURNING VARBINARY FORMAT JSON ENCODING UTF8)
PRIOR AS x
SELECT if.x
SELECT PERCENTILE_CONT(x, 0.5) OVER ()
WITH my_cte AS (SELECT 'a' AS desc) SELECT desc AS description FROM cart_items
WITH my_cte AS (SELECT 'a' AS asc) SELECT asc AS description FROM countries
SELECT * FROM customers
SELECT * FROM orders
SELECT * FROM order_items
SELECT * FROM customer_addresses
SELECT /*+ SOME_HINT(foo) */ 1
SELECT /*+ REBALANCE */ * FROM shopping_carts
SELECT * FROM (tbl1 CROSS JOIN (SELECT * FROM cart_items) AS t1)
/* comment1 */ INSERT INTO countries /* comment2 */ VALUES (1, 2, 3)
/* comment1 */ UPDATE customers /* comment2 */ SET x = 2 WHERE x < 2
/* comment1 */ DELETE FROM orders /* comment2 */ WHERE y > 1
/* comment */ CREATE TABLE order_items AS SELECT 1
SELECT next, transform, if
SELECT "any", "case", "if", "next"
SELECT x FROM customer_addresses ORDER BY x ASC
KILL '123'
KILL CONNECTION 123
KILL QUERY '123'
CHR(97)
SELECT * FROM UNNEST(x) WITH ORDINALITY UNION ALL SELECT * FROM UNNEST(y) WITH ORDINALITY
SELECT x FROM shopping_carts UNION ALL SELECT x FROM cart_items LIMIT 1
SELECT x FROM countries UNION ALL SELECT x FROM customers UNION ALL SELECT x FROM orders LIMIT 1
WITH use(use) AS (SELECT 1) SELECT use FROM order_items
SELECT recursive FROM customer_addresses
SELECT (ROW_NUMBER() OVER (PARTITION BY user ORDER BY date ASC) - ROW_NUMBER() OVER (PARTITION BY user, segment ORDER BY date ASC)) AS group_id FROM shopping_carts
CAST(foo AS BPCHAR)
values
SELECT values
SELECT values AS values FROM cart_items WHERE values + 1 > 3
SELECT truncate
SELECT only
TRUNC(a, b)
SELECT enum
SELECT unlogged
SELECT name
SELECT copy
SELECT rollup
SELECT unnest
SELECT cube, cube.x FROM countries
SELECT * FROM customers STRAIGHT_JOIN b
SELECT COUNT(DISTINCT "foo bar") FROM (SELECT 1 AS "foo bar") AS t
SELECT vector
WITH all AS (SELECT 1 AS count) SELECT all.count FROM orders
SELECT rename
GRANT SELECT ON TABLE order_items TO user
GRANT SELECT, INSERT ON FUNCTION tbl TO user
GRANT SELECT ON orders TO ROLE PUBLIC
GRANT SELECT ON nation TO alice WITH GRANT OPTION
GRANT DELETE ON SCHEMA finance TO bob
REVOKE SELECT ON TABLE customer_addresses FROM shopping_carts
REVOKE SELECT, INSERT ON FUNCTION tbl FROM cart_items
REVOKE SELECT ON orders FROM countries PUBLIC
REVOKE GRANT OPTION FOR SELECT ON nation FROM customers
REVOKE DELETE ON SCHEMA finance FROM orders CASCADE
REVOKE INSERT ON TABLE order_items FROM customer_addresses RESTRICT
SELECT attach
SELECT detach
SELECT 1 OFFSET 1
SELECT 1 LIMIT 1
CAST(x AS INT128)
CAST(x AS UINT128)
CAST(x AS UINT256)
SELECT export
SELECT ARG_MAX(DISTINCT selected_col, filtered_col) FROM table
SELECT ARG_MIN(DISTINCT selected_col, filtered_col) FROM table
a.b.c.D()
a.b.c.d.e.f.G()
SELECT CUME_DIST() OVER (ORDER BY 1) FROM (SELECT 1)
SELECT DENSE_RANK() OVER (ORDER BY 1) FROM (SELECT 1)
SELECT NTILE(1) OVER (ORDER BY 1) FROM (SELECT 1)
SELECT RANK() OVER (ORDER BY 1) FROM (SELECT 1)
SELECT PERCENT_RANK() OVER (ORDER BY 1) FROM (SELECT 1)
SELECT ACOS(x)
SELECT ACOSH(x)
SELECT ASIN(x)
SELECT ASINH(x)
SELECT ATAN(x)
SELECT ATANH(x)
SELECT ATAN2(x, y)
SELECT COT(x)
SELECT COTH(x)
SELECT CSC(x)
SELECT CSCH(x)
SELECT RADIANS(x)
SELECT SEC(x)
SELECT SECH(x)
SELECT UTC_DATE
SELECT UTC_TIME
SELECT UTC_TIMESTAMP
SELECT SIN(x)
SELECT SINH(x)
SELECT TANH(x)
SELECT COSINE_DISTANCE(v1, v2)
SELECT EUCLIDEAN_DISTANCE(v1, v2)
FOO(values.c)
case.*
SELECT unknown
SELECT test.Unknown FROM shopping_carts
SELECT lock
SELECT a FROM cart_items GROUP BY GROUPING SETS ((x + y, z))
SELECT (LEAD(foo1, 1, 0)) OVER (PARTITION BY foo2 ORDER BY foo3) FROM countries
SELECT LAST_VALUE(CASE WHEN interval <> 'foo' THEN interval END) IGNORE NULLS FROM customers
WITH UNNEST AS (SELECT 1 AS UNNEST) SELECT UNNEST FROM UNNEST
SELECT * FROM orders GROUP BY GROUPING SETS ((a + 1, b * 1), c, CUBE (a, b), ROLLUP (c, d), (a + y, b * 1), ())
SELECT * FROM order_items GROUP BY GROUPING SETS (GROUPING SETS (course), GROUPING SETS (type), CUBE (a), ROLLUP (b))
SELECT analyze FROM (SELECT 1 AS analyze)
SELECT 'Ac' ILIKE 'a%c' ESCAPE NULL
SELECT CURRENT_DATABASE()
SELECT CURRENT_SCHEMAS(arg_bool)
SELECT UNIFORM(1, 10, 5)
SELECT UNIFORM(1, 10)
SELECT CURRENT_TIMEZONE()
SELECT NUMRANGE(1.1, 2.2) -|- NUMRANGE(2.2, 3.3)
CREATE TABLE customer_addresses (a VARCHAR, check INT)
CREATE TABLE shopping_carts (x INT)
DROP TABLE cart_items
SELECT TRIM("both") FROM countries
"while"
DROP INDEX "concurrently"
CREATE INDEX "concurrently" ON t(x)
CREATE TABLE customers AS "minvalue"
CREATE TABLE orders AS "increment"
CREATE TABLE order_items AS "start"
CREATE TABLE customer_addresses AS "cache"
CREATE TABLE shopping_carts AS "sample"
DESCRIBE "history"
SELECT * FROM cart_items CONNECT BY "nocycle" = 1
SELECT a BETWEEN "symmetric" AND b FROM countries
SELECT JSON_OBJECT("key": 1)
SELECT JSON_OBJECT('a': "value")
CREATE INDEX i ON t(c "nulls")
GRANT SELECT ON TABLE customers TO "role"
ANALYZE "verbose"
ANALYZE "tables"
ANALYZE "database"
CREATE TABLE orders (a INT, UNIQUE "key" (a))
USE "role"
SELECT MATCH("table") AGAINST('x') FROM order_items
