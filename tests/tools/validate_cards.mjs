#!/usr/bin/env node
// Validate Adaptive Cards (schema 1.5, Microsoft Teams flavour) with the official
// `adaptivecards` npm parser.
//
// stdin : a JSON array of cards (plain JSON objects)
// stdout: a JSON array with, per card, the list of error strings (empty = valid)
//
// The package's `lib/` build is ESM with extension-less imports that Node cannot
// load, so the UMD bundle `dist/adaptivecards.min.js` is used. Parsing and
// validateProperties() need no DOM (no jsdom or other dependency).
//
// Reported per card: every parse event of the SerializationContext (unknown element /
// action types, invalid enum values, properties newer than the card version...) and
// every card.validateProperties() failure (missing/duplicate ids, unsupported version,
// more than Teams' 6 actions, empty ChoiceSet...). Cards are parsed against their own
// declared version (at most 1.5), so e.g. Action.Execute in a "1.2" card is reported.
//
// The parser alone is lenient: it silently ignores unknown properties, wrongly-typed
// values and non-object array entries, and checks few required properties. To make it
// strict, SerializableObject.prototype.parse is wrapped so every object the parser
// builds reads its JSON through a Proxy that records which keys were read: a key the
// parser never read is an unknown property. Keys are also checked against the property
// names the 1.5 JSON schema declares for that type (the parser accepts more), values of
// the parser's own PropertyDefinitions are type-checked, and the 1.5 schema's required
// properties are enforced. Every message starts with a JSON path to the object.
//
// Teams extensions that are allowed (and nothing else):
//   * `msteams` on the root card (object; keys `width` = "Full" and `entities`);
//   * `choices.data` on Input.ChoiceSet ({type: "Data.Query", dataset, count?, skip?}),
//     which the library knows but gates at 1.6: the gate is lowered so the
//     library parses and checks it like any 1.5 property.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";

const require = createRequire(import.meta.url);
const AC = require("adaptivecards/dist/adaptivecards.min.js");

const MAX_VERSION = AC.Versions.v1_5;
// Teams' host config (adaptivecards-designer hostConfigs/microsoft-teams-*.json) allows 6.
const TEAMS_MAX_ACTIONS = 6;
const MSTEAMS_KEYS = new Set(["width", "entities"]);
const ARRAY_KEYS = new Set(["body", "items", "columns", "actions", "inlines", "rows", "cells", "images", "facts", "choices"]);

// --- Adaptive Cards 1.5 JSON schema: property names and required properties -----------
// The parser accepts properties on many types that the 1.5 schema does not declare
// (`lang`, `horizontalAlignment`, `height`... on every element, `id`/`style`/`bleed` on
// the card...), so each object's keys are also checked against the names declared by
// https://adaptivecards.io/schemas/1.5.0/adaptive-card.json (additionalProperties: false).
const ELEMENT = ["type", "id", "isVisible", "requires", "fallback", "height", "separator", "spacing"];
const INPUT = [...ELEMENT, "label", "isRequired", "errorMessage"];
const ACTION = ["type", "id", "requires", "fallback", "title", "iconUrl", "style", "tooltip", "isEnabled", "mode"];
const CARD = [
    "type", "version", "$schema", "refresh", "authentication", "body", "actions", "selectAction",
    "fallbackText", "backgroundImage", "minHeight", "rtl", "speak", "lang", "verticalContentAlignment",
];
const CONTAINER_LIKE = ["items", "selectAction", "style", "verticalContentAlignment", "bleed", "backgroundImage", "minHeight", "rtl"];
const SCHEMA_15 = {
    AdaptiveCard: CARD,
    TextBlock: [...ELEMENT, "text", "color", "fontType", "horizontalAlignment", "isSubtle", "maxLines", "size", "weight", "wrap", "style"],
    Image: [...ELEMENT, "url", "altText", "backgroundColor", "horizontalAlignment", "selectAction", "size", "style", "width"],
    Media: [...ELEMENT, "sources", "poster", "altText"],
    MediaSource: ["type", "mimeType", "url"],
    RichTextBlock: [...ELEMENT, "inlines", "horizontalAlignment"],
    TextRun: ["type", "text", "color", "fontType", "highlight", "isSubtle", "italic", "selectAction", "size", "strikethrough", "underline", "weight"],
    Container: [...ELEMENT, ...CONTAINER_LIKE],
    Column: ["type", "id", "isVisible", "requires", "fallback", "separator", "spacing", "width", ...CONTAINER_LIKE],
    ColumnSet: [...ELEMENT, "columns", "selectAction", "style", "bleed", "minHeight", "horizontalAlignment"],
    FactSet: [...ELEMENT, "facts"],
    Fact: ["type", "title", "value"],
    ImageSet: [...ELEMENT, "images", "imageSize"],
    ActionSet: [...ELEMENT, "actions"],
    // The 1.5 schema file spells it "firstRowAsHeader"; renderers (this parser included) read "firstRowAsHeaders".
    Table: [...ELEMENT, "columns", "rows", "firstRowAsHeaders", "showGridLines", "gridStyle", "horizontalCellContentAlignment", "verticalCellContentAlignment"],
    TableColumnDefinition: ["type", "width", "horizontalCellContentAlignment", "verticalCellContentAlignment"],
    TableRow: ["type", "cells", "style", "horizontalCellContentAlignment", "verticalCellContentAlignment"],
    TableCell: ["type", ...CONTAINER_LIKE],
    "Input.Text": [...INPUT, "isMultiline", "maxLength", "placeholder", "regex", "style", "inlineAction", "value"],
    "Input.Number": [...INPUT, "max", "min", "placeholder", "value"],
    "Input.Date": [...INPUT, "max", "min", "placeholder", "value"],
    "Input.Time": [...INPUT, "max", "min", "placeholder", "value"],
    "Input.Toggle": [...INPUT, "title", "value", "valueOff", "valueOn", "wrap"],
    // + Teams extension "choices.data"
    "Input.ChoiceSet": [...INPUT, "choices", "isMultiSelect", "style", "value", "placeholder", "wrap", "choices.data"],
    "Input.Choice": ["type", "title", "value"],
    "Data.Query": ["type", "dataset", "count", "skip"],
    "Action.Execute": [...ACTION, "verb", "data", "associatedInputs"],
    "Action.Submit": [...ACTION, "data", "associatedInputs"],
    "Action.OpenUrl": [...ACTION, "url"],
    "Action.ShowCard": [...ACTION, "card"],
    "Action.ToggleVisibility": [...ACTION, "targetElements"],
    BackgroundImage: ["type", "url", "fillMode", "horizontalAlignment", "verticalAlignment"],
    Refresh: ["type", "action", "userIds"],
    Authentication: ["type", "text", "connectionName", "tokenExchangeResource", "buttons"],
    TokenExchangeResource: ["type", "id", "uri", "providerId"],
    AuthCardButton: ["type", "title", "image", "value"],
};
for (const k of Object.keys(SCHEMA_15)) SCHEMA_15[k] = new Set(SCHEMA_15[k]);

// Required properties the parser itself does not check (it does check: input ids,
// Input.Choice title/value, Action.OpenUrl url, Action.ToggleVisibility targetElements).
const REQUIRED_15 = {
    TextBlock: ["text"],
    Image: ["url"],
    ImageSet: ["images"],
    Media: ["sources"],
    MediaSource: ["mimeType", "url"],
    RichTextBlock: ["inlines"],
    TextRun: ["text"],
    Container: ["items"],
    TableCell: ["items"],
    FactSet: ["facts"],
    Fact: ["title", "value"],
    ActionSet: ["actions"],
    "Input.Toggle": ["title"],
    "Data.Query": ["dataset"],
    BackgroundImage: ["url"],
    TokenExchangeResource: ["id", "uri", "providerId"],
    AuthCardButton: ["type", "value"],
};

// Schema name of the parser's non-card-object classes (these may carry an optional
// `"type": "<name>"` that the parser never reads).
const SUBOBJECT_NAMES = [
    [AC.Fact, "Fact"],
    [AC.Choice, "Input.Choice"],
    [AC.ChoiceSetInputDataQuery, "Data.Query"],
    [AC.BackgroundImage, "BackgroundImage"],
    [AC.MediaSource, "MediaSource"],
    [AC.RefreshDefinition, "Refresh"],
    [AC.Authentication, "Authentication"],
    [AC.TokenExchangeResource, "TokenExchangeResource"],
    [AC.AuthCardButton, "AuthCardButton"],
    [AC.TableColumnDefinition, "TableColumnDefinition"],
].filter(([cls]) => typeof cls === "function");

// --- Teams `choices.data` extension: un-gate it from 1.6 -----------------------------
for (const prop of [
    AC.ChoiceSetInput.choicesDataProperty,
    AC.ChoiceSetInputDataQuery.typeProperty,
    AC.ChoiceSetInputDataQuery.datasetProperty,
    AC.ChoiceSetInputDataQuery.countProperty,
    AC.ChoiceSetInputDataQuery.skipProperty,
]) {
    prop.targetVersion = AC.Versions.v1_0;
}

// --- instrumentation -------------------------------------------------------------------
let state = null; // per-card bookkeeping while a card is being parsed

const origParse = AC.SerializableObject.prototype.parse;
AC.SerializableObject.prototype.parse = function (source, context) {
    if (!state || !source || typeof source !== "object" || Array.isArray(source)) {
        return origParse.call(this, source, context);
    }
    const accessed = new Set();
    const note = (key) => {
        if (typeof key === "string") accessed.add(key);
    };
    const proxy = new Proxy(source, {
        get(target, key, receiver) {
            note(key);
            return Reflect.get(target, key, receiver);
        },
        has(target, key) {
            note(key);
            return Reflect.has(target, key);
        },
        getOwnPropertyDescriptor(target, key) {
            note(key);
            return Reflect.getOwnPropertyDescriptor(target, key);
        },
    });
    state.records.push({ obj: this, source, accessed });
    state.objToSource.set(this, source);
    state.stack.push(source);
    try {
        return origParse.call(this, proxy, context);
    } finally {
        state.stack.pop();
    }
};

const origParseCardObject = AC.SerializationContext.prototype.parseCardObject;
AC.SerializationContext.prototype.parseCardObject = function (parent, source, ...rest) {
    if (!state) return origParseCardObject.call(this, parent, source, ...rest);
    state.stack.push(source);
    try {
        return origParseCardObject.call(this, parent, source, ...rest);
    } finally {
        state.stack.pop();
    }
};

// --- helpers ---------------------------------------------------------------------------
function buildPaths(value, path, paths) {
    if (value && typeof value === "object") {
        if (!paths.has(value)) paths.set(value, path);
        if (Array.isArray(value)) {
            value.forEach((v, i) => buildPaths(v, `${path}[${i}]`, paths));
        } else {
            for (const [k, v] of Object.entries(value)) {
                const seg = /^[A-Za-z_$][\w$]*$/.test(k) ? `.${k}` : `[${JSON.stringify(k)}]`;
                buildPaths(v, path + seg, paths);
            }
        }
    }
    return paths;
}

function typeNameOf(obj) {
    if (obj instanceof AC.CardObject) return obj.getJsonTypeName();
    for (const [cls, name] of SUBOBJECT_NAMES) if (obj instanceof cls) return name;
    try {
        return obj.getSchemaKey();
    } catch {
        return obj?.constructor?.name ?? "?";
    }
}

function jsonType(v) {
    if (v === null) return "null";
    if (Array.isArray(v)) return "array";
    return typeof v;
}

function expectedType(prop) {
    // ValueSetProperty / PixelSizeProperty / StringArrayProperty items are already
    // reported by the parser itself; ContainerStyleProperty extends ValueSetProperty.
    if (prop instanceof AC.ValueSetProperty) return null;
    if (prop instanceof AC.StringProperty) return "string";
    if (prop instanceof AC.BoolProperty) return "boolean";
    if (prop instanceof AC.NumProperty) return "number";
    if (prop instanceof AC.EnumProperty) return "string";
    if (prop instanceof AC.StringArrayProperty) return "array";
    if (prop instanceof AC.SerializableObjectCollectionProperty) return "array";
    if (prop instanceof AC.SerializableObjectProperty) return "object";
    return null;
}

function parseVersion(v) {
    if (typeof v !== "string") return undefined;
    const m = /^(\d+)\.(\d+)$/.exec(v);
    return m ? new AC.Version(Number(m[1]), Number(m[2])) : undefined;
}

// --- validation of one card --------------------------------------------------------------
function validateCard(json) {
    const errors = [];
    if (!json || typeof json !== "object" || Array.isArray(json)) {
        return [`$: card must be a JSON object, got ${jsonType(json)}`];
    }
    const paths = buildPaths(json, "$", new WeakMap());
    const pathOf = (raw) => (raw && paths.get(raw)) || "$";

    // Parse against the card's declared version (capped at 1.5) so that features newer
    // than the declared version (e.g. Action.Execute in a "1.2" card) are reported.
    const declared = parseVersion(json.version);
    const target = declared && declared.compareTo(MAX_VERSION) <= 0 ? declared : MAX_VERSION;

    const context = new AC.SerializationContext(target);
    const card = new AC.AdaptiveCard();
    card.maxVersion = MAX_VERSION;
    card.hostConfig = new AC.HostConfig({ actions: { maxActions: TEAMS_MAX_ACTIONS } });

    state = { records: [], objToSource: new Map(), stack: [] };
    const eventPath = (source) =>
        source && state.objToSource.has(source)
            ? pathOf(state.objToSource.get(source))
            : pathOf(state.stack[state.stack.length - 1]);
    const parseEvents = [];
    const origLogEvent = context.logEvent;
    context.logEvent = function (source, phase, event, message) {
        parseEvents.push({ path: eventPath(source), source, event, message });
        return origLogEvent.call(this, source, phase, event, message);
    };

    let records;
    let objToSource;
    try {
        card.parse(json, context);
    } catch (e) {
        errors.push(`$: parser threw ${e && e.stack ? e.stack.split("\n")[0] : e}`);
    } finally {
        records = state.records;
        objToSource = state.objToSource;
        state = null;
    }
    const name = (ev) => AC.ValidationEvent[ev.event] ?? String(ev.event);

    for (const ev of parseEvents) {
        let hint = "";
        const unknownType = /^Unknown (element|action) type "(.*)"/.exec(ev.message);
        if (unknownType) {
            const registry = unknownType[1] === "element" ? AC.GlobalRegistry.elements : AC.GlobalRegistry.actions;
            const known = registry.findByName(unknownType[2]);
            if (known && known.schemaVersion.compareTo(MAX_VERSION) > 0) {
                hint = ` (${unknownType[2]} is Adaptive Cards ${known.schemaVersion}, not 1.5)`;
            } else if (known) {
                hint = ` (${unknownType[2]} needs card version ${known.schemaVersion}; this card declares ${target})`;
            }
        }
        errors.push(`${ev.path}: [${name(ev)}] ${ev.message}${hint}`);
    }

    // validateProperties(): missing input ids, duplicate ids, card type/version, too many
    // actions, empty ChoiceSet, choices without title/value, Action.OpenUrl without url...
    try {
        const results = card.validateProperties();
        for (const ev of results.validationEvents) {
            if (
                ev.event === AC.ValidationEvent.CollectionCantBeEmpty &&
                ev.source instanceof AC.ChoiceSetInput &&
                Object.hasOwn(objToSource.get(ev.source) ?? {}, "choices.data")
            ) {
                continue; // dynamic typeahead: choices come from choices.data
            }
            const raw = objToSource.get(ev.source);
            errors.push(`${raw ? pathOf(raw) : "$"}: [${name(ev)}] ${ev.message}`);
        }
    } catch (e) {
        errors.push(`$: validateProperties threw ${e}`);
    }

    // Strictness: unknown properties, JSON types, required properties.
    for (const { obj, source, accessed } of records) {
        const path = pathOf(source);
        const type = typeNameOf(obj);
        const isRoot = source === json;
        const isCardObject = obj instanceof AC.CardObject;
        const err = (kind, msg) => errors.push(`${path}: [${kind}] ${msg}`);

        // Keys the parser legitimately does not read.
        const readable = new Set(accessed);
        if (obj instanceof AC.CardElement || obj instanceof AC.Action) readable.add("fallback");
        if (!isCardObject && source.type === type) readable.add("type"); // e.g. {"type": "Fact", ...}
        if (obj instanceof AC.AdaptiveCard && !isRoot) {
            readable.add("version"); // an Action.ShowCard card may state these
            readable.add("$schema");
        }
        if (isRoot) readable.add("msteams"); // Teams extension, checked below
        const declared = SCHEMA_15[type];

        for (const key of Object.keys(source)) {
            if (!readable.has(key)) {
                err("UnknownProperty", `Unknown property "${key}" on ${type} (ignored by the parser).`);
            } else if (declared && !declared.has(key) && !(isRoot && key === "msteams")) {
                err("UnknownProperty", `Unknown property "${key}" on ${type} (not in the Adaptive Cards 1.5 schema).`);
            }
        }

        for (const key of REQUIRED_15[type] ?? []) {
            if (!Object.hasOwn(source, key)) err("PropertyCantBeNull", `Property "${key}" of ${type} must be set.`);
        }

        const schema = obj.getSchema();
        const schemaNames = new Set();
        for (let i = 0; i < schema.getCount(); i++) {
            const prop = schema.getItemAt(i);
            schemaNames.add(prop.name);
            if (!prop.isSerializationEnabled || !Object.hasOwn(source, prop.name)) continue;
            if (prop.targetVersion.compareTo(target) > 0) continue; // already reported
            const value = source[prop.name];
            const actual = jsonType(value);
            let expected = expectedType(prop);
            if (prop.name === "backgroundImage" && actual === "string") expected = null; // URL shorthand
            if (actual === "null") {
                if (prop.name !== "rtl") err("InvalidPropertyType", `Property "${prop.name}" of ${type} is null.`);
            } else if (expected && actual !== expected) {
                err("InvalidPropertyType", `Property "${prop.name}" of ${type} must be ${expected}, got ${actual}.`);
            }
        }
        for (const key of ARRAY_KEYS) {
            if (!Object.hasOwn(source, key) || !accessed.has(key)) continue;
            const value = source[key];
            if (!Array.isArray(value)) {
                // "body", "items", "actions"... are read by custom code that silently ignores
                // non-arrays (schema properties were type-checked above).
                if (!schemaNames.has(key)) {
                    err("InvalidPropertyType", `Property "${key}" of ${type} must be array, got ${jsonType(value)}.`);
                }
                continue;
            }
            // The parser silently skips entries that are not objects.
            value.forEach((item, i) => {
                const t = jsonType(item);
                if (t !== "object" && !(key === "inlines" && t === "string")) {
                    err("InvalidPropertyType", `${key}[${i}] of ${type} must be an object, got ${t}.`);
                }
            });
        }
        if (Object.hasOwn(source, "fallback") && (obj instanceof AC.CardElement || obj instanceof AC.Action)) {
            const fb = source.fallback;
            if (!(typeof fb === "string" && fb.toLowerCase() === "drop") && jsonType(fb) !== "object") {
                err("InvalidPropertyValue", `"fallback" must be "drop" or an element/action object.`);
            }
        }
        if (obj instanceof AC.Action && Object.hasOwn(source, "data")) {
            const t = jsonType(source.data);
            if (t !== "object" && t !== "string") err("InvalidPropertyType", `Property "data" of ${type} must be object or string, got ${t}.`);
        }
        if (Object.hasOwn(source, "associatedInputs")) {
            const v = source.associatedInputs;
            if (typeof v !== "string" || !["auto", "none"].includes(v.toLowerCase())) {
                err("InvalidPropertyValue", `Invalid value "${v}" for property "associatedInputs".`);
            }
        }
        if (obj instanceof AC.ToggleVisibilityAction && Array.isArray(source.targetElements)) {
            source.targetElements.forEach((t, i) => {
                const ok =
                    typeof t === "string" ||
                    (jsonType(t) === "object" &&
                        typeof t.elementId === "string" &&
                        Object.keys(t).every((k) => ["type", "elementId", "isVisible"].includes(k)) &&
                        (t.isVisible === undefined || typeof t.isVisible === "boolean"));
                if (!ok) err("InvalidPropertyValue", `targetElements[${i}] must be an element id or {elementId, isVisible}.`);
            });
        }
        if (obj instanceof AC.HostCapabilities) {
            for (const [k, v] of Object.entries(source)) {
                if (typeof v !== "string") err("InvalidPropertyType", `requires["${k}"] must be a version string.`);
            }
        }
    }

    // Teams `msteams` extension on the root card.
    if (Object.hasOwn(json, "msteams")) {
        const ms = json.msteams;
        if (jsonType(ms) !== "object") {
            errors.push(`$.msteams: [InvalidPropertyType] "msteams" must be an object.`);
        } else {
            for (const key of Object.keys(ms)) {
                if (!MSTEAMS_KEYS.has(key)) {
                    errors.push(`$.msteams: [UnknownProperty] Unknown property "${key}" on msteams.`);
                }
            }
            if (Object.hasOwn(ms, "width") && ms.width !== "Full") {
                errors.push(`$.msteams: [InvalidPropertyValue] Invalid value "${ms.width}" for property "width".`);
            }
            if (Object.hasOwn(ms, "entities") && !Array.isArray(ms.entities)) {
                errors.push(`$.msteams: [InvalidPropertyType] "entities" must be an array.`);
            }
        }
    }

    // The root card must state a version (validateProperties only checks the parsed
    // value, which the parser defaults when the property is missing or invalid).
    if (!Object.hasOwn(json, "version")) {
        errors.push(`$: [PropertyCantBeNull] Property "version" must be set.`);
    }

    return [...new Set(errors)];
}

// The instrumentation relies on adaptivecards internals (pinned to 3.0.6 in package.json):
// refuse to run rather than silently pass everything if an upgrade breaks it.
function selfTest() {
    const probe = validateCard({
        type: "AdaptiveCard",
        version: "1.5",
        body: [
            { type: "TextBlock", text: "x", zzzProbe: 1 },
            { type: "Input.ChoiceSet", id: "c", choices: [], "choices.data": { type: "Data.Query", dataset: "d" } },
        ],
    });
    if (probe.length !== 1 || !probe[0].includes('"zzzProbe"')) {
        throw new Error(`validator self-test failed (adaptivecards internals changed?): ${JSON.stringify(probe)}`);
    }
}

// --- main ---------------------------------------------------------------------------------
function main() {
    selfTest();
    const input = readFileSync(0, "utf8");
    let cards;
    try {
        cards = JSON.parse(input);
    } catch (e) {
        process.stderr.write(`validate_cards: stdin is not JSON: ${e.message}\n`);
        process.exit(2);
    }
    if (!Array.isArray(cards)) {
        process.stderr.write("validate_cards: stdin must be a JSON array of cards\n");
        process.exit(2);
    }
    process.stdout.write(JSON.stringify(cards.map(validateCard)));
}

main();
