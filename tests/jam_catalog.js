// The catalog's client module (tests/jam_app.py): jam.js loads it from
// /js/<catalog id>.js while load_task builds the tree.
window.catalog_module_loaded = task.catalog.ID;
