//! Schema adjustments for the generated CRDs.

use schemars::Schema;

/// Removes a type's own description from its schema, so that the description of the field that
/// uses the type is what `kubectl explain` shows. Needed for enums used in `Option` fields: the
/// structural rewrite of `Option<Enum>` otherwise replaces the field's description with the enum's.
pub(crate) fn drop_description(schema: &mut Schema) {
    schema.remove("description");
}
