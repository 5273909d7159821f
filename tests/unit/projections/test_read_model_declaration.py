"""A read model declares its name, tables and description in the class statement or as attributes."""

import pytest

from projections.model import Column, ReadModel, Table, handles

T = Table("t", (Column("k"),), key=("k",))


def test_class_keywords_declare_the_read_model():
    class Keyed(ReadModel, name="keyed", tables=[T], description="d"):
        @handles("Channel.PaymentAccepted")
        def paid(self, event, rows):
            pass

    class Child(Keyed):
        pass

    assert (Keyed.name, Keyed.tables, Keyed.description) == ("keyed", (T,), "d")
    assert Child.name == "keyed" and Child().handled_events == {"Channel.PaymentAccepted"}


def test_class_attributes_still_declare_the_read_model():
    class Attributes(ReadModel):
        name = "attributes"
        tables = (T,)

    assert (Attributes.name, Attributes.tables, Attributes.description) == ("attributes", (T,), "")


def test_a_keyword_name_is_checked_like_an_attribute():
    with pytest.raises(ValueError, match="lower_snake_case"):
        class Bad(ReadModel, name="Bad", tables=(T,)):
            pass
