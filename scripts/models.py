"""PyTorch definitions of the models the Go nn package implements (module names must match)."""
import torch.nn as nn


class RecipeCNN(nn.Module):
    """The recipe's CNN: input (N, cin, 28, 28) -> logits (N, classes)."""

    def __init__(self, cin=3, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, 32, 3, 1)
        self.relu1 = nn.ReLU()
        self.maxpool1 = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.relu2 = nn.ReLU()
        self.maxpool2 = nn.MaxPool2d(2, 2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(64 * 5 * 5, 128)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(128, classes)

    def forward(self, x):
        x = self.maxpool1(self.relu1(self.conv1(x)))
        x = self.maxpool2(self.relu2(self.conv2(x)))
        x = self.relu3(self.fc1(self.flatten(x)))
        return self.fc2(x)


class Add(nn.Module):
    """op "Add": element-wise a + b (residual)."""

    def forward(self, a, b):
        return a + b


class BasicBlock(nn.Module):
    def __init__(s):
        super().__init__()
        s.conv1 = nn.Conv2d(8, 8, 3, stride=1, padding=2, dilation=2, groups=2, bias=False)
        s.bn1 = nn.BatchNorm2d(8, eps=1e-3)
        s.relu = nn.ReLU()
        s.conv2 = nn.Conv2d(8, 8, 3, padding=1, groups=8)  # depthwise, with bias
        s.add = Add()
        s.tanh = nn.Tanh()

    def forward(s, x):
        return s.tanh(s.add(s.conv2(s.relu(s.bn1(s.conv1(x)))), x))


class ParityNet(nn.Module):
    def __init__(s):
        super().__init__()
        s.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        s.stem_bn = nn.BatchNorm2d(8)
        s.stem_act = nn.GELU()  # exact (erf) GELU
        s.block = BasicBlock()
        s.avgpool = nn.AvgPool2d(3, stride=2, padding=1)  # count_include_pad=True (default)
        s.maxpool = nn.MaxPool2d(3, stride=1, padding=1)
        s.gap = nn.AdaptiveAvgPool2d(1)
        s.flatten = nn.Flatten()
        s.fc1 = nn.Linear(8, 16)
        s.sigmoid = nn.Sigmoid()
        s.dropout = nn.Dropout(0.3)
        s.fc2 = nn.Linear(16, 5)
        s.softmax = nn.Softmax(dim=1)

    def forward(s, x):
        x = s.block(s.stem_act(s.stem_bn(s.stem(x))))
        x = s.flatten(s.gap(s.maxpool(s.avgpool(x))))
        return s.softmax(s.fc2(s.dropout(s.sigmoid(s.fc1(x)))))


def state_dict_f32(model):
    """state_dict without BatchNorm's num_batches_tracked, as contiguous float32 tensors."""
    return {k: v.detach().float().contiguous().clone() for k, v in model.state_dict().items()
            if not k.endswith("num_batches_tracked")}
