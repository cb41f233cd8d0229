//! Resolving targets (`heads`, `TREE@head`, `base`, partial ids, `+N`, `-N`, ...).
