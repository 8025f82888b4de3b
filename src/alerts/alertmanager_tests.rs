//! Alertmanager rendering, table by table.

use super::*;
