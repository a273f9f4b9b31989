"""Labels of events and superevents."""
from __future__ import annotations

from sqlalchemy import select

from gw_ops.local_gracedb.db import Label, utcnow
from gw_ops.local_gracedb.errors import ApiError, check_label
from gw_ops.local_gracedb.service.base import ServiceBase, object_id_of
from gw_ops.local_gracedb.store import Transaction


class LabelsSection(ServiceBase):
    """``/labels/`` of events and superevents."""

    def apply_label(self, tx: Transaction, obj, base: str, name: str, user: str,
                    strict: bool = True) -> Label | None:
        """Apply label ``name`` with its log message and alert; ``strict``: 400 if present."""
        object_id = object_id_of(obj)
        if tx.session.execute(select(Label.id).where(Label.object_id == object_id,
                                                     Label.name == name)).first():
            if strict:
                raise ApiError(400, f"The label {name} is already applied to {object_id}")
            return None
        label = Label(object_id=object_id, name=name, creator=user, created=utcnow())
        tx.session.add(label)
        self.add_log(tx, obj, user, f"Added label: {name}")
        tx.session.flush()
        self.object_alert(tx, obj, base, "label_added", self.label_dict(label, base))
        return label

    def drop_label(self, tx: Transaction, obj, base: str, name: str, strict: bool = True) -> bool:
        """Remove label ``name`` with its log message and alert; ``strict``: 404 if absent."""
        object_id = object_id_of(obj)
        label = tx.session.execute(select(Label).where(Label.object_id == object_id,
                                                       Label.name == name)).scalar_one_or_none()
        if label is None:
            if strict:
                raise ApiError(404, f"Label {name} is not applied to {object_id}")
            return False
        data = self.label_dict(label, base)
        tx.session.delete(label)
        self.add_log(tx, obj, label.creator, f"Removed label: {name}")
        tx.session.flush()
        self.object_alert(tx, obj, base, "label_removed", data)
        return True

    def write_label(self, user: str, base: str, object_id: str, name: str) -> dict:
        check_label(name)
        with self.store.write() as tx:
            obj = self.get_object(tx.session, object_id)
            object_id = object_id_of(obj)  # a gw_id in the URL names it too
            label = self.apply_label(tx, obj, base, name, user)
            return self.label_dict(label, base)

    def remove_label(self, user: str, base: str, object_id: str, name: str) -> None:
        check_label(name)
        with self.store.write() as tx:
            self.drop_label(tx, self.get_object(tx.session, object_id), base, name)

    def labels(self, base: str, object_id: str, name: str | None = None) -> dict:
        with self.store.read() as session:
            object_id = object_id_of(self.get_object(session, object_id))
            labels = self.labels_of(session, object_id)
        if name:
            check_label(name)
            match = [label for label in labels if label.name == name]
            if not match:
                raise ApiError(404, f"Label {name} is not applied to {object_id}")
            return self.label_dict(match[0], base)
        return {"labels": [self.label_dict(label, base) for label in labels],
                "links": {"self": f"{self.object_url(object_id, base)}/labels/"}}
