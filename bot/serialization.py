"""Outgoing and incoming activities (de)serialised without msrest's per-call overhead, exactly as
msrest would: :class:`FastSerializer` for what the connector sends, :class:`FastDeserializer` for
what Teams posts, :class:`SharedJson` for a card handed to botbuilder without a deep copy."""

from __future__ import annotations

import contextlib

from msrest import Serializer
from msrest.serialization import Deserializer, Model, full_restapi_key_transformer


class SharedJson(dict):
    """A JSON object (a card, an invoke response's body) handed to botbuilder as it is:
    ``TurnContext.send_activities`` deep-copies every outgoing activity (0.3-0.6 ms for a 12 KB
    card), and ``copy.deepcopy`` gives this one back unchanged instead. Nothing changes the
    card once it is sent. It serialises exactly as a dict (``json``, :class:`FastSerializer`)."""

    __slots__ = ()

    def __deepcopy__(self, memo):
        return self


_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})
_MAX_NODES = 200_000


def plain_json(value) -> bool:
    """Whether ``value`` is made of exact dicts (or :class:`SharedJson`; str keys), lists and
    JSON scalars only: what msrest's ``serialize_object`` would copy node by node into an
    equal structure."""
    stack, seen = [value], 0
    while stack:
        v = stack.pop()
        seen += 1
        if seen > _MAX_NODES:
            return False
        t = type(v)
        if t is dict or t is SharedJson:
            for k, x in v.items():
                if type(k) is not str:
                    return False
                stack.append(x)
        elif t is list:
            stack.extend(v)
        elif t not in _JSON_SCALARS:
            return False
    return True


_PLAIN_CONTAINERS = (dict, list, SharedJson)
_BASIC = {"str": str, "bool": bool, "int": int, "float": float}
_NO_PLAN = object()


def _unshared(value):
    """``value`` with every :class:`SharedJson` made a dict again: msrest's ``serialize_object``
    rebuilds exact dicts (and lists), and writes anything else, a dict subclass too, as its str()."""
    t = type(value)
    if t is dict or t is SharedJson:
        return {k: _unshared(v) for k, v in value.items()}
    if t is list:
        return [_unshared(v) for v in value]
    return value


class _NotFast(Exception):
    """A value the fast path leaves to msrest."""


class FastSerializer(Serializer):
    """msrest's Serializer, with the same output, made cheap for what the bot sends:

    * an ``object``-typed value that is already plain JSON (an Adaptive Card in an
      attachment's ``content``, ``channelData``, ``value``) is passed through as it is instead
      of being rebuilt node by node (~6 ms for a 12 KB card, against ~0.1 ms for the check);
    * a request body that is a tree of models (an activity, conversation parameters) is
      written by walking each model's attribute map once (~0.05 ms for an activity, against
      ~0.3 ms: msrest first "deserialises" the models into themselves, then tries every
      attribute, raising and catching an exception for each one that is None). Exact str,
      bool, int and float values are kept; anything else (enums, dates, objects) goes through
      msrest's own function for its type, and any value the walk does not expect (a dict where
      a model is declared, a flattened key, an XML model...) sends the whole body through msrest.

    Anything else (URL, query and header parameters) goes through msrest as before."""

    def __init__(self, classes=None) -> None:
        super().__init__(classes)
        # msrest validates every request body against the models' ``_validation`` constraints,
        # walking the whole activity (~0.8 ms for a card); botbuilder's models declare none, so
        # the walk can find nothing. Kept if some model does declare constraints.
        self._validate_bodies = any(getattr(m, "_validation", None) for m in self.dependencies.values())
        self._plans: dict[type, tuple | None] = {}

    def serialize_object(self, attr, **kwargs):
        if type(attr) in _PLAIN_CONTAINERS and plain_json(attr):
            return attr
        if type(attr) in _PLAIN_CONTAINERS:  # not plain JSON (a date, a model inside...): msrest's way
            attr = _unshared(attr)
        return super().serialize_object(attr, **kwargs)

    def body(self, data, data_type, **kwargs):
        if self._validate_bodies or not self.client_side_validation:
            return super().body(data, data_type, **kwargs)
        if (not kwargs and isinstance(data, Model) and type(data) is self.dependencies.get(data_type)
                and self.key_transformer is full_restapi_key_transformer):
            with contextlib.suppress(Exception):  # else msrest's own path below: its result, or its error
                return self._fast_model(data)
        self.client_side_validation = False  # URL, query and header parameters are still validated
        try:
            return super().body(data, data_type, **kwargs)
        finally:
            self.client_side_validation = True

    # ------------------------------------------------------------------ the fast path of body()

    def _plan(self, cls: type) -> tuple | None:
        """(attribute, JSON key, type) of a model class, in msrest's order; None when msrest must
        do it (XML, flattened keys, additional properties under an empty key)."""
        plan = self._plans.get(cls, _NO_PLAN)
        if plan is _NO_PLAN:
            plan = []
            if cls.is_xml_model():
                plan = None
            else:
                for attr, desc in cls._attribute_map.items():
                    key = desc["key"]
                    if not key or "." in key or "\\" in key:
                        plan = None
                        break
                    plan.append((attr, key, desc["type"]))
            plan = self._plans[cls] = tuple(plan) if plan is not None else None
        return plan

    def _fast_model(self, obj: Model) -> dict:
        plan = self._plan(type(obj))
        if plan is None:
            raise _NotFast(type(obj).__name__)
        out = {}
        for attr, key, typ in plan:
            value = getattr(obj, attr)
            if value is not None:  # (msrest leaves None out)
                out[key] = self._fast_value(value, typ)
        return out

    def _fast_value(self, value, typ: str):
        t = type(value)
        basic = _BASIC.get(typ)
        if basic is not None:
            if t is basic:
                return value
            if typ == "str":
                return Serializer.serialize_unicode(value)  # msrest's (an enum: its value)
            raise _NotFast(typ)
        if typ == "object":
            return self.serialize_object(value)
        if typ == "iso-8601":
            return Serializer.serialize_iso(value)
        if typ[:1] == "[" and typ[-1:] == "]":
            if t is not list:
                raise _NotFast(typ)
            inner = typ[1:-1]
            return [None if v is None else self._fast_value(v, inner) for v in value]
        model = self.dependencies.get(typ)
        if isinstance(model, type) and issubclass(model, Model) and isinstance(value, Model):
            return self._fast_model(value)
        raise _NotFast(typ)


def _json_copy(value):
    """A copy of parsed JSON, as msrest's ``deserialize_object`` makes it (new dicts and lists,
    the same scalars); anything else is msrest's to handle."""
    t = type(value)
    if t is dict:
        return {k: _json_copy(v) for k, v in value.items()}
    if t is list:
        return [_json_copy(v) for v in value]
    if t in _JSON_SCALARS:
        return value
    raise _NotFast(t.__name__)


class FastDeserializer:
    """msrest's ``Model.deserialize`` of parsed JSON (an inbound activity), with the same
    result, made cheap (~0.06 ms for a Teams message against ~0.25-0.45 ms): each model's
    attribute map is walked once; values of the exact JSON type declared are kept (an
    ``object`` is copied, as msrest does), dates go through msrest's own parser, and keys no
    model declares become ``additional_properties`` as msrest makes them. Anything the walk
    does not expect (a number where a string is declared, a dict type, a flattened key...)
    sends the whole body through msrest: its result, or its error."""

    def __init__(self, root: type[Model]) -> None:
        self.root = root
        self.dependencies = root._infer_class_models()
        self._plans: dict[type, tuple | None] = {}

    def __call__(self, data):
        with contextlib.suppress(Exception):
            return self._model(self.root, data)
        return self.root.deserialize(data)

    def _plan(self, cls: type) -> tuple | None:
        plan = self._plans.get(cls, _NO_PLAN)
        if plan is _NO_PLAN:
            plan = None
            if not (cls.is_xml_model() or cls.__dict__.get("_subtype_map") or getattr(cls, "_validation", None)
                    or "additional_properties" in cls._attribute_map):
                fields = tuple((attr, desc["key"], desc["type"]) for attr, desc in cls._attribute_map.items())
                if all(key and "." not in key and "\\" not in key for _, key, _ in fields):
                    plan = (fields, frozenset(key for _, key, _ in fields))
            self._plans[cls] = plan
        return plan

    def _model(self, cls: type, data):
        plan = self._plan(cls)
        if plan is None or type(data) is not dict:
            raise _NotFast(cls.__name__)
        fields, known = plan
        kwargs = {}
        for attr, key, typ in fields:
            raw = data.get(key)
            kwargs[attr] = None if raw is None else self._value(raw, typ)
        obj = cls(**kwargs)
        extra = data.keys() - known
        if extra:  # (msrest's additional-properties detection)
            obj.additional_properties = {k: data[k] for k in extra}
        return obj

    def _value(self, raw, typ: str):
        basic = _BASIC.get(typ)
        if basic is not None:
            if type(raw) is basic:
                return raw
            raise _NotFast(typ)
        if typ == "object":
            return _json_copy(raw)
        if typ == "iso-8601":
            return Deserializer.deserialize_iso(raw)
        if typ[:1] == "[" and typ[-1:] == "]":
            if type(raw) is not list:
                raise _NotFast(typ)
            inner = typ[1:-1]
            return [None if v is None else self._value(v, inner) for v in raw]
        model = self.dependencies.get(typ)
        if isinstance(model, type) and issubclass(model, Model):
            return self._model(model, raw)
        raise _NotFast(typ)
