"""The document table's sealed image round-trips ids, owners, tags and tombstones."""

from __future__ import annotations

import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from secure_index.index.document_table import DocumentTable

OWNERS = ("node-a", "node-b", "node-c")


def _reloaded(table: DocumentTable) -> DocumentTable:
    return DocumentTable(memoryview(bytearray(table.serialize())))


def test_dense_table_round_trips() -> None:
    # Prepare
    table = DocumentTable()
    table.upsert(["a", "b", "c"], owner="node-a", tags=[("x",), (), ("x", "y")])
    table.upsert(["d"], owner="node-b", tags=[()])
    # Execute
    loaded = _reloaded(table)
    # Assert
    assert loaded.label_maps() == table.label_maps()
    assert len(loaded) == 4
    assert loaded.resolve(3) == ("d", "node-b")
    assert loaded.label_of("c") == table.label_of("c")
    assert set(loaded.matching_labels(owner=None, tags=["x"]).tolist()) == {0, 2}


def test_deleted_labels_stay_tombstones_after_reload_even_the_last_one() -> None:
    # Prepare: delete a middle label and the highest one (the image then has gaps).
    table = DocumentTable()
    table.upsert(["a", "b", "c", "d"], owner="node-a", tags=[(), (), (), ()])
    table.delete(["b", "d"])
    # Execute
    loaded = _reloaded(table)
    # Assert
    ids, owners = loaded.label_maps()
    assert ids[:3] == ["a", None, "c"]
    assert owners[:3] == ["node-a", None, "node-a"]
    assert len(loaded) == 2
    assert loaded.resolve(1) is None
    assert loaded.label_of("b") is None


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(0, 15), st.sampled_from(OWNERS)),
        min_size=1,
        max_size=40,
    )
)
def test_any_history_of_upserts_and_deletes_round_trips(
    ops: list[tuple[bool, int, str]],
) -> None:
    # Prepare
    table = DocumentTable()
    for insert, number, owner in ops:
        if insert:
            table.upsert([f"doc-{number}"], owner=owner, tags=[()])
        else:
            table.delete([f"doc-{number}"])
    # Execute
    loaded = _reloaded(table)
    # Assert: same ids and owners per live label; tombstones need not keep their owner.
    ids, owners = table.label_maps()
    new_ids, new_owners = loaded.label_maps()
    live = {n: (d, owners[n]) for n, d in enumerate(ids) if d is not None}
    assert {n: (d, new_owners[n]) for n, d in enumerate(new_ids) if d is not None} == live
    assert len(loaded) == len(table)
    for doc_id, _owner in live.values():
        assert loaded.label_of(doc_id) == table.label_of(doc_id)


def test_a_loaded_table_unchanged_reseals_its_image_as_it_came() -> None:
    # Prepare
    table = DocumentTable()
    table.upsert(["a", "b"], owner="node-a", tags=[("x",), ()])
    image = table.serialize()
    # Execute
    loaded = DocumentTable(memoryview(bytearray(image)))
    # Assert: no database was made for an unchanged table; its image is the one loaded
    assert loaded.serialize() == image


def test_a_loaded_table_makes_its_database_on_first_use_for_filters_rows_and_writes() -> None:
    # Prepare
    table = DocumentTable()
    table.upsert(["a", "b", "c"], owner="node-a", tags=[("x",), (), ("x",)])
    table.upsert(["d"], owner="node-b", tags=[("x",)])
    loaded = _reloaded(table)
    # Execute: concurrent first filters (the database is made once, under the mutex)
    results: list[list[int]] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(
                sorted(loaded.matching_labels(owner="node-a", tags=["x"]).tolist())
            )
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    loaded.upsert(["e"], owner="node-b", tags=[("x",)])
    loaded.delete(["a"])
    # Assert
    assert results == [[0, 2]] * 4
    assert [r.doc_id for r in loaded.rows(["c", "d", "a"])] == ["c", "d"]
    assert sorted(loaded.matching_labels(owner="node-b", tags=["x"]).tolist()) == [3, 4]
    again = _reloaded(loaded)  # the changed table serialises its database, not the old image
    assert again.label_of("a") is None
    assert again.resolve(4) == ("e", "node-b")
    assert sorted(again.matching_labels(owner=None, tags=["x"]).tolist()) == [2, 3, 4]
