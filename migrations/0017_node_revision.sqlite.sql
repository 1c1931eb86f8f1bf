-- Nodes stored before: a random token each, as a write would give them (no two
-- databases a process reads share one by chance).
UPDATE nodes SET revision = abs(random() % 4611686018427387903) + 1;
