from histolabel.memo import Lru


def test_the_least_recently_used_goes_first_and_a_kept_value_is_not_built_again() -> None:
    memo: Lru[int] = Lru(2)
    built: list[str] = []

    def build(key: str) -> int:
        built.append(key)
        return len(built)

    assert memo.get_or_build("a", lambda: build("a")) == 1
    assert memo.get_or_build("b", lambda: build("b")) == 2
    assert memo.get_or_build("a", lambda: build("a")) == 1  # kept; now the most recent
    memo.put("c", 3)  # over the size: b, the least recently used, goes
    assert memo.get("b") is None and memo.get("a") == 1 and memo.get("c") == 3
    assert built == ["a", "b"]
    memo.clear()
    assert memo.get("a") is None
