"""The website chat: the widget's endpoints, visitors, and their conversations."""
